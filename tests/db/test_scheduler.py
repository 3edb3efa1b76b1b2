"""Scheduler, selection and sending, against the real database with a frozen clock."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendMessage, SendPhoto, SendVideo
from aiohttp import ClientConnectorError
from aiohttp.client_reqrep import ConnectionKey
from sqlalchemy import text

from bot.app import build_app, create_bot
from bot.database import Database
from bot.presentation.notifier import TelegramNotifier
from bot.send_budget import BudgetLimits, SendBudget
from bot.services.delivery import Delivery
from bot.services.scheduler import ChatBackoff, Scheduler
from db.engine import EngineOptions, create_engine, create_session_factory
from db.repositories import QueueRepository
from db.repositories.media import eligible_query
from tests.helpers.fake_telegram_session import RecordingSession, command_update
from tests.helpers.pgproxy import PgProxy, commit_after
from tests.helpers.scheduling import NOW, make_scheduler, seed_library, seed_window
from tests.helpers.support import (
    ALICE,
    JPEG,
    OTHER_CHAT,
    TEAM_CHAT,
    Clock,
    TestApp,
    execute,
    fetch_all,
    seed_chat,
    seed_media,
)


async def test_selection_order(app: TestApp) -> None:
    days = lambda n: NOW - timedelta(days=n)  # noqa: E731
    a, b, c, d = await seed_media(app.sessions, count=4)
    async with app.sessions() as session, session.begin():
        for media_id, last, times in ((a, days(5), 3), (c, days(10), 5), (d, days(10), 1)):
            await session.execute(
                text("UPDATE media_items SET last_posted_at = :l, times_posted = :t WHERE id = :i"),
                {"l": last, "t": times, "i": media_id},
            )
        order = list((await session.execute(eligible_query(TEAM_CHAT, NOW))).scalars())
    assert [m.id for m in order] == [b, d, c, a]


async def test_each_exclusion(app: TestApp) -> None:
    await seed_chat(app.sessions, OTHER_CHAT)
    free, ttl, expired, permanent, twin, queued, inactive = await seed_media(app.sessions, count=7)
    await seed_media(app.sessions, OTHER_CHAT, prefix="other")
    async with app.sessions() as session, session.begin():
        lock = "INSERT INTO media_locks (media_item_id, reason, locked_until) VALUES (:m, :r, :u)"
        await session.execute(text(lock), {"m": ttl, "r": "skip", "u": NOW + timedelta(days=1)})
        await session.execute(text(lock), {"m": expired, "r": "skip", "u": NOW - timedelta(days=1)})
        await session.execute(text(lock), {"m": permanent, "r": "rejected", "u": None})
        # `twin` shares its file with the permanently locked item.
        await session.execute(
            text(
                "UPDATE media_items SET file_hash = (SELECT file_hash FROM media_items"
                " WHERE id = :p) WHERE id = :t"
            ),
            {"p": permanent, "t": twin},
        )
        await session.execute(
            text("INSERT INTO posting_queue (media_item_id, chat_id) VALUES (:m, :c)"),
            {"m": queued, "c": TEAM_CHAT},
        )
        await session.execute(
            text("UPDATE media_items SET is_active = false WHERE id = :m"), {"m": inactive}
        )
        eligible = {m.id for m in (await session.execute(eligible_query(TEAM_CHAT, NOW))).scalars()}
    assert eligible == {free, expired}


async def test_tick_sends_the_owed_slot_with_its_keyboard(app: TestApp) -> None:
    await seed_window(app)
    [_media_id] = await seed_library(app)
    scheduler = make_scheduler(app, Clock(NOW))

    await scheduler.tick()

    [send] = app.telegram.of(SendPhoto)
    assert send.chat_id == TEAM_CHAT
    assert "item0.jpg" in send.caption and "#cat" in send.caption
    assert [b.text for row in send.reply_markup.inline_keyboard for b in row] == [
        "✅ Posted",
        "⏭️ Skip",
        "🚫 Reject",
    ]
    [row] = await fetch_all(
        app.sessions, "SELECT status, telegram_message_id, scheduled_for FROM posting_queue"
    )
    assert row.status == "sent" and row.telegram_message_id is not None
    assert row.scheduled_for == datetime(2026, 6, 1, 10, tzinfo=UTC)
    [media] = await fetch_all(app.sessions, "SELECT telegram_file_id FROM media_items")
    assert media.telegram_file_id.startswith("photo-")
    [chat] = await fetch_all(app.sessions, "SELECT last_post_sent_at FROM chat_settings")
    assert chat.last_post_sent_at == datetime(2026, 6, 1, 10, tzinfo=UTC)

    await scheduler.tick()  # the 10:00 slot is filled; 11:00 has not come
    assert len(app.telegram.of(SendPhoto)) == 1
    assert (app.settings.data_dir / "scheduler.heartbeat").exists()


async def test_second_send_reuses_the_file_id(app: TestApp) -> None:
    await seed_window(app)
    await seed_library(app)
    clock = Clock(NOW)
    scheduler = make_scheduler(app, clock)
    await scheduler.tick()
    async with app.sessions() as session, session.begin():
        await session.execute(text("DELETE FROM posting_queue"))
    clock.now += timedelta(hours=1)
    await scheduler.tick()

    first, second = app.telegram.of(SendPhoto)
    assert not isinstance(first.photo, str)  # uploaded
    [media] = await fetch_all(app.sessions, "SELECT telegram_file_id FROM media_items")
    assert second.photo == media.telegram_file_id


async def test_paused_chat_is_skipped(app: TestApp) -> None:
    await seed_window(app, is_paused=True)
    await seed_library(app)
    await make_scheduler(app, Clock(NOW)).tick()
    assert app.telegram.of(SendPhoto) == []


async def test_outside_the_window_nothing_is_sent(app: TestApp) -> None:
    await seed_window(app)
    await seed_library(app)
    await make_scheduler(app, Clock(NOW.replace(hour=22))).tick()
    assert app.telegram.of(SendPhoto) == []


async def test_catch_up_after_downtime_one_per_tick(app: TestApp) -> None:
    await seed_window(app, last_post_sent_at=datetime(2026, 6, 1, 9, tzinfo=UTC))
    await seed_library(app, count=5)
    clock = Clock(datetime(2026, 6, 1, 12, 10, tzinfo=UTC))
    scheduler = make_scheduler(app, clock)
    sent_per_tick = []
    for _ in range(5):
        before = len(app.telegram.of(SendPhoto))
        await scheduler.tick()
        sent_per_tick.append(len(app.telegram.of(SendPhoto)) - before)
        clock.now += timedelta(minutes=1)
    assert sent_per_tick == [1, 1, 1, 0, 0]
    slots = await fetch_all(app.sessions, "SELECT scheduled_for FROM posting_queue ORDER BY 1")
    assert [row.scheduled_for.hour for row in slots] == [10, 11, 12]


async def test_two_schedulers_on_one_database_send_once(app: TestApp, database_url: str) -> None:
    await seed_window(app)
    await seed_library(app, count=3)
    other_engine = create_engine(EngineOptions(url=database_url, pool_size=2, max_overflow=0))
    try:
        other_telegram = RecordingSession()
        first = make_scheduler(app, Clock(NOW))
        second = make_scheduler(
            app, Clock(NOW), other_telegram, sessions=create_session_factory(other_engine)
        )
        for _ in range(3):
            await asyncio.gather(first.tick(), second.tick())
    finally:
        await other_engine.dispose()
    assert len(app.telegram.of(SendPhoto)) + len(other_telegram.of(SendPhoto)) == 1
    assert len(await fetch_all(app.sessions, "SELECT 1 FROM posting_queue")) == 1


def _bad_gateway(method: Any = None) -> TelegramServerError:
    return TelegramServerError(
        method=method or SendPhoto(chat_id=1, photo="x"), message="Bad Gateway"
    )


async def test_a_5xx_on_a_send_may_have_arrived_so_it_is_never_a_failure(app: TestApp) -> None:
    """A 5xx came after the request reached Telegram: like a timeout, two copies at worst."""
    await _seed_one_due_item_whose_sends_fail(app, *[_bad_gateway()] * 3)
    clock = Clock(NOW)
    scheduler = make_scheduler(app, clock)
    await scheduler.tick()

    await _assert_sent_twice_unconfirmed(app)
    # The item is not freed: a later slot does not send it again.
    clock.now += timedelta(hours=1)
    await scheduler.tick()
    assert len(app.telegram.of(SendPhoto)) == 2


async def test_a_flood_wait_is_waited_out_and_repeated(app: TestApp) -> None:
    """A 429 certainly did not send anything: repeated, and one message in the chat."""
    await seed_window(app)
    await seed_library(app)
    app.telegram.fail_next(
        SendPhoto,
        TelegramRetryAfter(method=SendPhoto(chat_id=1, photo="x"), message="Flood", retry_after=0),
    )
    await make_scheduler(app, Clock(NOW)).tick()
    assert len(app.telegram.of(SendPhoto)) == 2
    [row] = await fetch_all(app.sessions, "SELECT status, telegram_message_id FROM posting_queue")
    assert row.status == "sent" and row.telegram_message_id is not None
    assert app.telegram.of(SendMessage) == []


async def test_transient_failure_then_success(app: TestApp) -> None:
    await seed_window(app)
    await seed_library(app)
    app.telegram.fail_next(
        SendPhoto, TelegramNetworkError(method=SendPhoto(chat_id=1, photo="x"), message="timeout")
    )
    await make_scheduler(app, Clock(NOW)).tick()
    assert len(app.telegram.of(SendPhoto)) == 2
    [row] = await fetch_all(app.sessions, "SELECT status, send_attempts FROM posting_queue")
    assert (row.status, row.send_attempts) == ("sent", 2)


async def test_missing_media_file_is_a_failed_send(app: TestApp) -> None:
    await seed_window(app)
    await seed_media(app.sessions)  # no file on disk
    await make_scheduler(app, Clock(NOW)).tick()
    assert app.telegram.of(SendPhoto) == []
    [failed] = await fetch_all(app.sessions, "SELECT status, error_message FROM posting_history")
    assert failed.status == "failed" and "not found" in failed.error_message
    assert await fetch_all(app.sessions, "SELECT 1 FROM posting_queue") == []


async def _lease_ran_out(app: TestApp) -> None:
    """The sending rows' leases end (on the database's clock): as if their sender died."""
    async with app.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE posting_queue SET lease_expires_at = now() - interval '1 second'")
        )


async def _stuck_in_sending(app: TestApp, attempts: int) -> None:
    """One item claimed an hour ago and sent `attempts` times, never confirmed."""
    [media_id] = await seed_library(app)
    async with app.sessions() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO posting_queue (media_item_id, chat_id, status, claimed_at,"
                " send_attempts) VALUES (:m, :c, 'sending', :t, :a)"
            ),
            {"m": media_id, "c": TEAM_CHAT, "t": NOW - timedelta(hours=1), "a": attempts},
        )


@pytest.mark.parametrize("attempts", [1, 2])
async def test_a_stuck_sending_row_gets_the_notice_never_a_resend(
    app: TestApp, attempts: int
) -> None:
    """Its sender died after counting an attempt: the send may have arrived, or even been
    confirmed before the message id was written. The sweep cannot tell: buttons, no copy."""
    await seed_window(app, last_post_sent_at=NOW)
    await _stuck_in_sending(app, attempts)
    await make_scheduler(app, Clock(NOW)).tick()

    assert app.telegram.of(SendPhoto) == []
    [row] = await fetch_all(
        app.sessions, "SELECT status, send_attempts, telegram_message_id FROM posting_queue"
    )
    assert await fetch_all(app.sessions, "SELECT status FROM posting_history") == []
    assert (row.status, row.send_attempts, row.telegram_message_id) == ("sent", attempts, None)
    # The team gets the item's buttons in a notice, in case the media never arrived.
    [notice] = app.telegram.of(SendMessage)
    assert notice.chat_id == TEAM_CHAT and "didn't confirm" in notice.text
    assert [b.text for row in notice.reply_markup.inline_keyboard for b in row] == [
        "✅ Posted",
        "⏭️ Skip",
        "🚫 Reject",
    ]


async def test_expired_locks_are_deleted_permanent_stay(app: TestApp) -> None:
    a, b = await seed_media(app.sessions, count=2)
    async with app.sessions() as session, session.begin():
        lock = "INSERT INTO media_locks (media_item_id, reason, locked_until) VALUES (:m, :r, :u)"
        await session.execute(text(lock), {"m": a, "r": "skip", "u": NOW - timedelta(seconds=1)})
        await session.execute(
            text(lock), {"m": a, "r": "recent_post", "u": NOW + timedelta(days=1)}
        )
        await session.execute(text(lock), {"m": b, "r": "rejected", "u": None})
    assert await make_scheduler(app, Clock(NOW)).delete_expired_locks() == 1
    left = await fetch_all(app.sessions, "SELECT reason FROM media_locks ORDER BY reason")
    assert [row.reason for row in left] == ["recent_post", "rejected"]


async def test_video_is_sent_as_video(app: TestApp) -> None:
    await seed_window(app)
    (app.settings.media_dir / "cat").mkdir(parents=True)
    (app.settings.media_dir / "cat" / "clip0.jpg").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    await seed_media(app.sessions, prefix="clip", media_kind="video", mime_type="video/mp4")
    await make_scheduler(app, Clock(NOW)).tick()
    assert len(app.telegram.of(SendVideo)) == 1


async def _next(app: TestApp) -> str | None:
    await app.feed(command_update("/next", TEAM_CHAT, ALICE.user))
    replies = app.telegram.of(SendMessage)
    return replies[-1].text if replies else None


async def test_next_sends_now_ignoring_window_and_pause(app: TestApp) -> None:
    await seed_chat(app.sessions, is_paused=True, posting_hours_start=3, posting_hours_end=4)
    (app.settings.media_dir / "cat").mkdir(parents=True)
    (app.settings.media_dir / "cat" / "item0.jpg").write_bytes(JPEG)
    await seed_media(app.sessions)
    assert await _next(app) is None
    assert len(app.telegram.of(SendPhoto)) == 1


async def test_next_explains_an_empty_library(app: TestApp) -> None:
    assert "library is empty" in await _next(app)


@pytest.mark.parametrize(
    ("taken_by", "explanation"),
    [
        ("INSERT INTO media_locks (media_item_id, reason) VALUES (:m, 'rejected')", "locked"),
        (
            f"INSERT INTO posting_queue (media_item_id, chat_id) VALUES (:m, {TEAM_CHAT})",
            "already in the queue",
        ),
    ],
    ids=["locked", "queued"],
)
async def test_next_explains_why_nothing_can_be_sent(
    app: TestApp, taken_by: str, explanation: str
) -> None:
    [media_id] = await seed_media(app.sessions)
    await execute(app.sessions, taken_by, m=media_id)
    assert explanation in await _next(app)


async def test_next_says_why_the_send_failed(app: TestApp) -> None:
    await seed_media(app.sessions)  # its file is missing on disk
    reply = await _next(app)
    assert "Couldn't send the next item" in reply and "media file not found" in reply


# -- unknown outcomes, flood-waits, and lost COMMIT replies -----------------------------


def _timeout() -> TelegramNetworkError:
    return TelegramNetworkError(method=SendPhoto(chat_id=1, photo="x"), message="Request timeout")


async def _seed_one_due_item_whose_sends_fail(app: TestApp, *errors: Exception) -> None:
    """A window open now, one item in the library, and its next sendPhoto calls failing so."""
    await seed_window(app)
    await seed_library(app)
    for error in errors:
        app.telegram.fail_next(SendPhoto, error)


async def _assert_sent_twice_unconfirmed(app: TestApp) -> None:
    """Two copies at most, the row kept as sent and unconfirmed, and the team told so."""
    assert len(app.telegram.of(SendPhoto)) == 2  # never a third copy
    [row] = await fetch_all(
        app.sessions, "SELECT status, send_attempts, telegram_message_id FROM posting_queue"
    )
    assert (row.status, row.send_attempts, row.telegram_message_id) == ("sent", 2, None)
    assert await fetch_all(app.sessions, "SELECT 1 FROM posting_history") == []
    [notice] = app.telegram.of(SendMessage)
    assert "didn't confirm" in notice.text and notice.reply_markup is not None


async def test_a_send_that_timed_out_is_resent_once_and_both_messages_work(app: TestApp) -> None:
    """The first sendPhoto may have arrived: the row is kept and the repeat is counted."""
    await _seed_one_due_item_whose_sends_fail(app, _timeout())
    await make_scheduler(app, Clock(NOW)).tick()

    assert len(app.telegram.of(SendPhoto)) == 2
    [row] = await fetch_all(app.sessions, "SELECT id, status, send_attempts FROM posting_queue")
    assert (row.status, row.send_attempts) == ("sent", 2)
    assert await fetch_all(app.sessions, "SELECT 1 FROM posting_history") == []
    # Both messages carry the same buttons: a press on either one records the item.
    first, second = (
        send.reply_markup.inline_keyboard[0][0].callback_data for send in app.telegram.of(SendPhoto)
    )
    assert first == second and str(row.id.hex) in first


async def test_two_timeouts_keep_the_row_unconfirmed_never_failed(app: TestApp) -> None:
    await _seed_one_due_item_whose_sends_fail(app, _timeout(), _timeout())
    await make_scheduler(app, Clock(NOW)).tick()

    await _assert_sent_twice_unconfirmed(app)


async def test_a_timeout_then_a_refusal_is_not_recorded_as_failed(app: TestApp) -> None:
    await seed_window(app)
    await seed_library(app)
    app.telegram.fail_next(SendPhoto, _timeout())
    app.telegram.fail_next(
        SendPhoto,
        TelegramBadRequest(method=SendPhoto(chat_id=1, photo="x"), message="wrong file"),
    )
    await make_scheduler(app, Clock(NOW)).tick()
    [row] = await fetch_all(app.sessions, "SELECT status FROM posting_queue")
    assert row.status == "sent"
    assert await fetch_all(app.sessions, "SELECT 1 FROM posting_history") == []


async def test_a_chat_that_removed_the_bot_is_failed_once_and_backed_off(app: TestApp) -> None:
    await seed_window(app)
    await seed_library(app, count=3)
    app.telegram.fail_next(
        SendPhoto,
        TelegramForbiddenError(
            method=SendPhoto(chat_id=1, photo="x"), message="Forbidden: bot was kicked"
        ),
    )
    clock = Clock(NOW)
    scheduler = make_scheduler(app, clock)
    await scheduler.tick()
    clock.now += timedelta(hours=1)  # the next slot: the chat is still backed off
    await scheduler.tick()

    assert len(app.telegram.of(SendPhoto)) == 1
    [failed] = await fetch_all(app.sessions, "SELECT status, error_message FROM posting_history")
    assert failed.status == "failed" and "kicked" in failed.error_message
    assert scheduler.chat_backoff.waiting(TEAM_CHAT)


async def _two_chats_with_an_item_each(app: TestApp) -> None:
    """The team chat and OTHER_CHAT, both inside their posting window, one photo each."""
    await seed_window(app)
    await seed_chat(
        app.sessions, OTHER_CHAT, posting_hours_start=9, posting_hours_end=21, posts_per_day=12
    )
    await seed_library(app)
    await seed_media(app.sessions, OTHER_CHAT, prefix="other")
    (app.settings.media_dir / "cat" / "other0.jpg").write_bytes(JPEG)


class FloodWaitIn(RecordingSession):
    """Telegram's flood control answers the first send to one chat with retry_after."""

    def __init__(self, chat_id: int, retry_after: int) -> None:
        super().__init__()
        self.flooded_chat = chat_id
        self.retry_after = retry_after
        self.sent_at: dict[int, list[float]] = {}

    async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
        if isinstance(method, SendPhoto):
            chat = int(method.chat_id)
            self.sent_at.setdefault(chat, []).append(asyncio.get_running_loop().time())
            if chat == self.flooded_chat and len(self.sent_at[chat]) == 1:
                self.calls.append(method)
                raise TelegramRetryAfter(method=method, message="Too Many Requests", retry_after=2)
        return await super().make_request(bot, method, timeout)


async def test_a_flood_wait_holds_up_only_its_chat_and_keeps_its_claim(
    app: TestApp, database_url: str
) -> None:
    await _two_chats_with_an_item_each(app)
    # The flooded chat is claimed first; with one delivery slot the other must not wait for it.
    telegram = FloodWaitIn(OTHER_CHAT, retry_after=2)
    bot = create_bot(app.settings, session=telegram)
    clock = Clock(NOW)
    scheduler = Scheduler(
        app.sessions,
        Delivery(
            app.sessions,
            TelegramNotifier(bot, app.settings.media_dir, instagram=False),
            backoff_seconds=(0.0, 0.0),
            stuck_after=timedelta(seconds=0.6),
        ),
        chat_backoff=ChatBackoff(),
        data_dir=app.settings.data_dir,
        clock=clock,
        concurrency=1,
    )
    # Another process whose stuck-row sweep runs while the first waits out the flood.
    other = Delivery(
        app.sessions,
        TelegramNotifier(
            create_bot(app.settings, session=RecordingSession()),
            app.settings.media_dir,
            instagram=False,
        ),
        stuck_after=timedelta(seconds=0.6),
    )
    ticking = asyncio.create_task(scheduler.tick())
    taken = []
    for _ in range(12):
        await asyncio.sleep(0.15)
        taken += await other.take_stuck()
    await ticking

    flooded, other_chat = telegram.sent_at[OTHER_CHAT], telegram.sent_at[TEAM_CHAT]
    assert len(flooded) == 2 and flooded[1] - flooded[0] >= 2.0
    assert other_chat[0] < flooded[0] + 1.0  # the other chat did not wait for the flood
    assert taken == []  # the claim was renewed while waiting: nobody resent it
    rows = await fetch_all(app.sessions, "SELECT status FROM posting_queue")
    assert [row.status for row in rows] == ["sent", "sent"]


async def _tick_losing_the_commit_reply(
    app: TestApp, proxy: PgProxy, proxied: Any, marker: bytes, *, photos: int, attempts: int
) -> None:
    """One tick through the proxy, losing the reply to the COMMIT after `marker`: sent once."""
    proxy.cut_after_reply_to(commit_after(marker))
    await make_scheduler(app, Clock(NOW), sessions=proxied).tick()

    assert proxy.cuts == 1
    assert len(app.telegram.of(SendPhoto)) == photos
    [row] = await fetch_all(app.sessions, "SELECT status, send_attempts FROM posting_queue")
    assert (row.status, row.send_attempts) == ("sent", attempts)


@pytest.mark.parametrize(
    ("timeouts", "marker"),
    [(0, b"INSERT INTO posting_queue"), (1, b"greatest(")],
    ids=["claim-is-found-and-sent", "counted-attempt-counts-once"],
)
async def test_a_send_whose_commit_reply_is_lost(
    app: TestApp, proxy: PgProxy, proxied: Any, timeouts: int, marker: bytes
) -> None:
    await seed_window(app)
    await seed_library(app)
    for _ in range(timeouts):
        app.telegram.fail_next(SendPhoto, _timeout())
    await _tick_losing_the_commit_reply(
        app, proxy, proxied, marker, photos=timeouts + 1, attempts=timeouts + 1
    )


async def test_next_whose_commit_reply_is_lost_is_found_and_sent(
    app: TestApp, proxy: PgProxy, proxied: Any
) -> None:
    await seed_library(app)
    proxy.cut_after_reply_to(commit_after(b"INSERT INTO posting_queue"))
    result = await make_scheduler(app, Clock(NOW), sessions=proxied).send_now(TEAM_CHAT)

    assert proxy.cuts == 1
    assert result.sent and len(app.telegram.of(SendPhoto)) == 1
    [row] = await fetch_all(app.sessions, "SELECT status FROM posting_queue")
    assert row.status == "sent"


async def test_stuck_sweep_whose_commit_reply_is_lost_sends_one_notice(
    app: TestApp, proxy: PgProxy, proxied: Any
) -> None:
    await seed_window(app, last_post_sent_at=NOW)
    await _stuck_in_sending(app, attempts=1)
    await _tick_losing_the_commit_reply(
        app, proxy, proxied, b"FOR UPDATE SKIP LOCKED", photos=0, attempts=1
    )
    assert len(app.telegram.of(SendMessage)) == 1


async def test_a_failed_notice_is_tried_again_by_the_sweep(app: TestApp) -> None:
    """Never a row without buttons anywhere: until the notice is in, the row stays stuck."""
    await _seed_one_due_item_whose_sends_fail(app, _timeout(), _timeout())
    app.telegram.fail_next(
        SendMessage, TelegramBadRequest(method=SendMessage(chat_id=1, text="x"), message="down")
    )
    clock = Clock(NOW)
    scheduler = make_scheduler(app, clock)
    await scheduler.tick()
    [row] = await fetch_all(app.sessions, "SELECT status, send_attempts FROM posting_queue")
    assert (row.status, row.send_attempts) == ("sending", 2)

    await _lease_ran_out(app)
    await scheduler.tick()
    assert len(app.telegram.of(SendPhoto)) == 2  # no third copy of the media
    assert len(app.telegram.of(SendMessage)) == 2  # the notice, tried again
    [row] = await fetch_all(app.sessions, "SELECT status, send_attempts FROM posting_queue")
    assert (row.status, row.send_attempts) == ("sent", 2)
    assert await fetch_all(app.sessions, "SELECT 1 FROM posting_history") == []


async def test_only_the_listed_chats_are_scheduled(app: TestApp) -> None:
    """A chat dropped from TELEGRAM_CHAT_ID keeps its rows but gets no more posts."""
    await _two_chats_with_an_item_each(app)
    await make_scheduler(app, Clock(NOW), chat_ids=(TEAM_CHAT,)).tick()
    assert [int(send.chat_id) for send in app.telegram.of(SendPhoto)] == [TEAM_CHAT]


async def test_an_item_pressed_while_its_send_is_retried_is_not_sent_again(
    app: TestApp,
) -> None:
    """The timed-out send did arrive and someone pressed it: no second copy."""
    await seed_window(app)
    await seed_library(app)

    class PressedDuringTimeout(RecordingSession):
        async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
            if isinstance(method, SendPhoto) and not self.of(SendPhoto):
                self.calls.append(method)
                async with app.sessions() as session, session.begin():
                    await session.execute(text("DELETE FROM posting_queue"))  # the press
                raise _timeout()
            return await super().make_request(bot, method, timeout)

    telegram = PressedDuringTimeout()
    await make_scheduler(app, Clock(NOW), telegram).tick()
    assert len(telegram.of(SendPhoto)) == 1
    assert telegram.of(SendMessage) == []


async def test_a_stuck_sweep_that_lost_its_connection_never_takes_another_sweeps_rows_as_its_own(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our sweep's transaction dies before its COMMIT; another process's sweep takes the
    rows meanwhile, with the same attempt count. Our re-read must not call them ours,
    or both processes resend the item."""
    await _stuck_in_sending(app, attempts=1)
    ours = make_scheduler(app, Clock(NOW)).delivery
    other = make_scheduler(app, Clock(NOW)).delivery
    reclaim = QueueRepository.reclaim
    taken_by_other: list[Any] = []
    faulted = asyncio.Event()

    async def reclaim_then_lose_the_connection(
        self: QueueRepository, queue_id: uuid.UUID, attempts: int, lease: timedelta
    ) -> bool:
        result = await reclaim(self, queue_id, attempts, lease)
        if faulted.is_set():
            return result
        faulted.set()
        pid = (await self._session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with app.sessions() as admin, admin.begin():
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        while await fetch_all(
            app.sessions, "SELECT 1 FROM pg_stat_activity WHERE pid = :pid", pid=pid
        ):
            await asyncio.sleep(0.02)
        taken_by_other.append(await other.take_stuck())
        return result

    monkeypatch.setattr(QueueRepository, "reclaim", reclaim_then_lose_the_connection)
    mine = await ours.take_stuck()

    [theirs] = taken_by_other
    assert [item.attempt for item in theirs] == [1]
    assert mine == []


# -- the unconfirmed notice at most once, confirmed sends never lost, leases on one clock ---


async def _two_timeouts_then(
    app: TestApp, notice_error: Exception, telegram: RecordingSession | None = None
) -> Scheduler:
    """An item whose two sends went unanswered, and whose notice meets `notice_error`."""
    telegram = telegram or app.telegram
    await seed_window(app)
    await seed_library(app)
    for _ in range(2):
        telegram.fail_next(SendPhoto, _timeout())
    telegram.fail_next(SendMessage, notice_error)
    scheduler = make_scheduler(app, Clock(NOW), telegram)
    await scheduler.tick()
    return scheduler


@pytest.mark.parametrize(
    "notice_error",
    [_bad_gateway(SendMessage(chat_id=1, text="x")), _timeout()],
    ids=["5xx", "timeout"],
)
async def test_a_notice_that_may_have_arrived_is_never_sent_again(
    app: TestApp, notice_error: Exception
) -> None:
    """Not by the request middleware (at once), nor by the stuck-row sweep (later)."""
    scheduler = await _two_timeouts_then(app, notice_error)
    assert len(app.telegram.of(SendMessage)) == 1
    [row] = await fetch_all(
        app.sessions,
        "SELECT status, unconfirmed_notice_at IS NOT NULL AS noticed FROM posting_queue",
    )
    assert (row.status, row.noticed) == ("sent", True)

    await _lease_ran_out(app)
    await scheduler.tick()
    assert len(app.telegram.of(SendMessage)) == 1
    assert len(app.telegram.of(SendPhoto)) == 2


async def test_a_notice_marked_by_a_sender_that_died_is_not_sent_again(app: TestApp) -> None:
    await seed_window(app, last_post_sent_at=NOW)
    await _stuck_in_sending(app, attempts=2)
    await execute(app.sessions, "UPDATE posting_queue SET unconfirmed_notice_at = now()")
    await make_scheduler(app, Clock(NOW)).tick()

    assert app.telegram.of(SendMessage) == [] and app.telegram.of(SendPhoto) == []
    [row] = await fetch_all(app.sessions, "SELECT status FROM posting_queue")
    assert row.status == "sent"  # actionable from the notice already in the chat


async def test_a_notice_whose_connection_was_refused_is_tried_later(app: TestApp) -> None:
    """Telegram never saw it: the mark is removed and the sweep sends it (once)."""
    key = ConnectionKey("api.telegram.org", 443, True, None, None, None, None)
    refused = TelegramNetworkError(method=SendMessage(chat_id=1, text="x"), message="refused")
    refused.__cause__ = ClientConnectorError(key, ConnectionRefusedError(111, "refused"))
    # A session of its own: one request middleware, which repeats a connection never made.
    telegram = RecordingSession()
    for _ in range(3):
        telegram.fail_next(SendMessage, refused)
    scheduler = await _two_timeouts_then(app, refused, telegram)
    [row] = await fetch_all(app.sessions, "SELECT status, unconfirmed_notice_at FROM posting_queue")
    assert (row.status, row.unconfirmed_notice_at) == ("sending", None)

    await _lease_ran_out(app)
    await scheduler.tick()
    assert len(telegram.of(SendMessage)) == 5  # four refused, one delivered
    [row] = await fetch_all(app.sessions, "SELECT status FROM posting_queue")
    assert row.status == "sent"
    assert len(telegram.of(SendPhoto)) == 2


async def _tick_while_sends_cannot_be_recorded(
    app: TestApp, proxy: PgProxy, proxied: Any
) -> asyncio.Task[None]:
    """A tick with one item due, in which every attempt to write a confirmed send's
    message id loses its connection."""
    await seed_window(app)
    await seed_library(app)
    proxy.cut_at_random(
        1.0,
        lambda data: b"UPDATE posting_queue SET status" in data and b"telegram_message_id" in data,
    )
    return asyncio.create_task(make_scheduler(app, Clock(NOW), sessions=proxied).tick())


async def test_a_confirmed_send_is_recorded_through_an_outage_past_the_retry_deadline(
    app: TestApp, proxy: PgProxy, proxied: Any
) -> None:
    ticking = await _tick_while_sends_cannot_be_recorded(app, proxy, proxied)
    await asyncio.sleep(6.0)  # longer than the database retry deadline (4 s)
    assert not ticking.done()
    proxy.cut_at_random(0.0)
    await asyncio.wait_for(ticking, 60)

    assert proxy.cuts >= 2
    assert len(app.telegram.of(SendPhoto)) == 1
    [row] = await fetch_all(app.sessions, "SELECT status, telegram_message_id FROM posting_queue")
    assert row.status == "sent" and row.telegram_message_id is not None
    assert app.telegram.of(SendMessage) == []


async def test_a_confirmed_send_whose_sender_stopped_before_recording_it_is_not_resent(
    app: TestApp, proxy: PgProxy, proxied: Any
) -> None:
    """The process stopped while the database was away: the next one gives the notice."""
    ticking = await _tick_while_sends_cannot_be_recorded(app, proxy, proxied)
    await asyncio.sleep(5.0)
    ticking.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ticking
    proxy.cut_at_random(0.0)
    [row] = await fetch_all(app.sessions, "SELECT status FROM posting_queue")
    assert row.status == "sending"

    await _lease_ran_out(app)
    await make_scheduler(app, Clock(NOW + timedelta(hours=1))).tick()
    assert len(app.telegram.of(SendPhoto)) == 1  # never a second copy
    [notice] = app.telegram.of(SendMessage)
    assert "didn't confirm" in notice.text
    [row] = await fetch_all(app.sessions, "SELECT status FROM posting_queue")
    assert row.status == "sent"


async def test_a_fresh_claim_is_not_stuck_to_a_host_whose_clock_runs_ahead(
    app: TestApp,
) -> None:
    """NTP stepped, a VM resumed: the hosts' clocks are an hour ahead of the database's."""
    await seed_library(app)
    started, release = asyncio.Event(), asyncio.Event()

    class SlowUpload(RecordingSession):
        async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
            if isinstance(method, SendPhoto):
                started.set()
                await release.wait()
            return await super().make_request(bot, method, timeout)

    def ahead() -> datetime:
        return datetime.now(UTC) + timedelta(hours=1)

    database = Database(engine=app.sessions.kw["bind"], sessions=app.sessions)
    uploading, other = SlowUpload(), RecordingSession()
    first = build_app(app.settings, database, session=uploading, clock=ahead)
    second = build_app(app.settings, database, session=other, clock=ahead)
    sending = asyncio.create_task(first.services.scheduler.send_now(TEAM_CHAT))
    await asyncio.wait_for(started.wait(), 10)
    # Another process, its clock as far ahead, sweeps for stuck rows meanwhile.
    await second.services.scheduler.tick()
    release.set()
    await sending

    assert other.of(SendPhoto) == [] and other.of(SendMessage) == []
    assert len(uploading.of(SendPhoto)) == 1 and uploading.of(SendMessage) == []
    [row] = await fetch_all(app.sessions, "SELECT status, telegram_message_id FROM posting_queue")
    assert row.status == "sent" and row.telegram_message_id is not None


async def test_processes_with_different_stuck_after_agree_on_a_lease(app: TestApp) -> None:
    """The holder stores its expiry: a sweep with a shorter setting does not cut it short."""
    [media_id] = await seed_library(app)
    patient = make_scheduler(app, Clock(NOW))
    async with app.sessions() as session, session.begin():
        await QueueRepository(session).claim_for_sending(
            media_id, TEAM_CHAT, NOW, lease=timedelta(hours=1)
        )
    hasty = Delivery(
        app.sessions, patient.delivery.notifier, stuck_after=timedelta(milliseconds=100)
    )
    await asyncio.sleep(0.5)
    assert await hasty.take_stuck() == []

    await _lease_ran_out(app)
    assert [item.media_item_id for item in await hasty.take_stuck()] == [media_id]


async def test_a_resend_holds_its_lease_so_no_sweep_takes_it_mid_send(app: TestApp) -> None:
    """/queue's Resend puts the row back in `sending`: with a lease on the database's clock,
    or any process's stuck-row sweep would give it the notice while the photo is leaving."""
    await seed_window(app)
    await seed_library(app)
    await make_scheduler(app, Clock(NOW)).tick()
    [row] = await fetch_all(app.sessions, "SELECT id, telegram_message_id FROM posting_queue")

    sweeps: list[int] = []
    leases: list[bool] = []
    real_request = app.telegram.make_request

    async def sweep_meanwhile(bot: Any, method: Any, timeout: int | None = None) -> Any:
        if isinstance(method, SendPhoto):
            [lease] = await fetch_all(
                app.sessions, "SELECT lease_expires_at > now() AS held FROM posting_queue"
            )
            leases.append(bool(lease.held))
            sweeps.append(len(await app.services.inflight.delivery.take_stuck()))
        return await real_request(bot, method, timeout)

    app.telegram.make_request = sweep_meanwhile  # type: ignore[method-assign]
    outcome = await app.services.inflight.resend(row.id, TEAM_CHAT, row.telegram_message_id)

    assert outcome == "resent"
    assert (leases, sweeps) == ([True], [0])
    assert [m for m in app.telegram.of(SendMessage) if "didn't confirm" in m.text] == []


async def test_a_claim_waiting_for_a_delivery_slot_keeps_its_lease(app: TestApp) -> None:
    """A tick claims every due chat at once; the deliveries run a few at a time. A claim
    waiting its turn behind a slow upload is still held: no sweep gives it the notice."""
    await _two_chats_with_an_item_each(app)
    lease = timedelta(seconds=0.3)
    sweeps: list[int] = []
    real_request = app.telegram.make_request

    async def slow_first_upload(bot: Any, method: Any, timeout: int | None = None) -> Any:
        if isinstance(method, SendPhoto) and not app.telegram.of(SendPhoto):
            await asyncio.sleep(4 * lease.total_seconds())
            # Another process's sweep, while the other chat's claim waits for the slot.
            sweeps.append(len(await scheduler.delivery.take_stuck()))
        return await real_request(bot, method, timeout)

    app.telegram.make_request = slow_first_upload  # type: ignore[method-assign]
    bot = create_bot(app.settings, session=app.telegram)
    delivery = Delivery(
        app.sessions,
        TelegramNotifier(bot, app.settings.media_dir, instagram=False),
        backoff_seconds=(0.0, 0.0),
        stuck_after=lease,
    )
    scheduler = Scheduler(
        app.sessions,
        delivery,
        chat_backoff=ChatBackoff(),
        data_dir=app.settings.data_dir,
        clock=Clock(NOW),
        concurrency=1,
    )
    await scheduler.tick()

    assert sweeps == [0]
    assert [m for m in app.telegram.of(SendMessage) if "didn't confirm" in m.text] == []
    rows = await fetch_all(app.sessions, "SELECT status, telegram_message_id FROM posting_queue")
    assert sorted((r.status, r.telegram_message_id is not None) for r in rows) == [
        ("sent", True),
        ("sent", True),
    ]


async def test_a_hand_back_whose_commit_reply_is_lost_never_takes_back_a_later_claim(
    app: TestApp, proxy: PgProxy, proxied: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hand-back landed, its reply was lost, and another process's sweep took the row
    and is sending it: a repeat of the hand-back would free that claim for a third
    process to send the item again. It is never repeated."""
    await seed_window(app)
    await seed_library(app)
    [claimed] = await make_scheduler(app, Clock(NOW)).claim_due([TEAM_CHAT])
    other = make_scheduler(app, Clock(NOW)).delivery
    taken: list[Any] = []
    real_release = QueueRepository.release_unsent

    async def release_after_a_takeover(self: QueueRepository, queue_id: uuid.UUID) -> bool:
        if not taken and await _attempts_of(app, queue_id) == 0:
            taken.extend(await other.take_stuck())  # between the lost reply and a repeat
        return await real_release(self, queue_id)

    monkeypatch.setattr(QueueRepository, "release_unsent", release_after_a_takeover)
    proxy.cut_after_reply_to(commit_after(b"SET lease_expires_at=now(), send_attempts="))
    await make_scheduler(app, Clock(NOW), sessions=proxied).delivery.release_unsent(
        claimed.queue_id
    )
    assert proxy.cuts == 1
    if not taken:
        taken.extend(await other.take_stuck())

    [item] = taken
    assert item.never_sent  # the hand-back landed: the sweep sends it, once
    assert await make_scheduler(app, Clock(NOW)).delivery.take_stuck() == []  # still its claim
    assert await _attempts_of(app, claimed.queue_id) == 1


async def _attempts_of(app: TestApp, queue_id: uuid.UUID) -> int:
    [row] = await fetch_all(
        app.sessions, "SELECT send_attempts FROM posting_queue WHERE id = :id", id=queue_id
    )
    return int(row.send_attempts)


async def test_a_shutdown_mid_tick_hands_back_the_claims_it_never_sent(app: TestApp) -> None:
    """Three chats due, one send in flight, one waiting for the send budget, one for a
    delivery slot: stopped there, the two never sent go out normally from the next
    process, with no "didn't confirm" notice; only the one in flight gets it."""
    third_chat = OTHER_CHAT - 1
    await _two_chats_with_an_item_each(app)
    await seed_chat(
        app.sessions, third_chat, posting_hours_start=9, posting_hours_end=21, posts_per_day=12
    )
    await seed_media(app.sessions, third_chat, prefix="third")
    (app.settings.media_dir / "cat" / "third0.jpg").write_bytes(JPEG)

    class FirstSendHangs(RecordingSession):
        async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
            if isinstance(method, SendPhoto) and not self.of(SendPhoto):
                self.calls.append(method)
                await asyncio.Event().wait()  # it left; its answer never comes
            return await super().make_request(bot, method, timeout)

    telegram = FirstSendHangs()
    # One send a minute for the whole bot: the second chat's send waits for the budget.
    budget = SendBudget(BudgetLimits(bot_per_second=1 / 60, bot_burst=1))
    bot = create_bot(app.settings, session=telegram, budget=budget)
    scheduler = Scheduler(
        app.sessions,
        Delivery(app.sessions, TelegramNotifier(bot, app.settings.media_dir, instagram=False)),
        chat_backoff=ChatBackoff(),
        data_dir=app.settings.data_dir,
        clock=Clock(NOW),
        concurrency=2,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop))
    chats = (TEAM_CHAT, OTHER_CHAT, third_chat)
    while not telegram.of(SendPhoto) or not any(budget.waiting(chat) for chat in chats):
        await asyncio.sleep(0.01)
    [in_flight] = telegram.of(SendPhoto)
    # Shutdown as the runner does it: stop, then cancel what outlasts the grace.
    stop.set()
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    scheduler_rows = await fetch_all(
        app.sessions, "SELECT chat_id, send_attempts FROM posting_queue ORDER BY chat_id"
    )
    attempts = {row.chat_id: row.send_attempts for row in scheduler_rows}
    assert attempts.pop(int(in_flight.chat_id)) == 1
    assert sorted(attempts.values()) == [0, 0], (in_flight.chat_id, scheduler_rows)  # handed back

    nxt = make_scheduler(app, Clock(NOW))
    await nxt.tick()
    sent_again = sorted(int(call.chat_id) for call in app.telegram.of(SendPhoto))
    assert sent_again == sorted(attempts)
    assert app.telegram.of(SendMessage) == []  # no notice for what never left

    await _lease_ran_out(app)
    await make_scheduler(app, Clock(NOW)).tick()
    [notice] = app.telegram.of(SendMessage)
    assert "didn't confirm" in notice.text and int(notice.chat_id) == int(in_flight.chat_id)
    assert len(app.telegram.of(SendPhoto)) == 2
