"""Every unit of work survives the loss of its last reply (COMMIT's, or an autocommit statement's).

Table-driven: each case seeds rows, runs one unit through the real services on
an engine behind the proxy, which lets the matching message reach the server
and drops the server's answer, then checks the rows. The unit's retry must
settle it (re-read or idempotent repeat) so that the rows say it happened
exactly once. To cover a new unit, add a `DroppedReply` to CASES.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram.methods import SendMessage, SendPhoto
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import Services, build_services, create_bot
from bot.config import Settings
from bot.database import Database
from bot.domain import Press
from bot.services.inflight import InFlightOutcome
from bot.services.notifier import ClaimedItem
from bot.services.press import OutcomeKind
from db.engine import create_session_factory
from db.repositories.media import MediaRepository
from db.vocabulary import Verdict
from tests.helpers.fake_telegram_session import RecordingSession
from tests.helpers.pgproxy import PgProxy, ProxiedEngines
from tests.helpers.support import (
    ALICE,
    TEAM_CHAT,
    fetch_all,
    seed_chat,
    seed_media,
    seed_queued,
)

OTHER_CHAT = -1002002


def commit(data: bytes) -> bool:
    return b"COMMIT" in data


def nth_commit(n: int) -> Callable[[bytes], bool]:
    """The n-th COMMIT of the unit (a unit of several transactions: read, then mark)."""
    seen = 0

    def matches(data: bytes) -> bool:
        nonlocal seen
        if b"COMMIT" not in data:
            return False
        seen += 1
        return seen == n

    return matches


def press_statement(status: str) -> Callable[[bytes], bool]:
    # The press runs in autocommit: its parameters travel in its Bind message.
    marker = f"press:{status}".encode()
    return lambda data: marker in data


@dataclass
class Run:
    """What a case works with: the proxied services and sessions, and what it seeded."""

    services: Services
    sessions: async_sessionmaker[AsyncSession]
    seeded: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DroppedReply:
    name: str
    act: Callable[[Run], Awaitable[Any]]
    check: Callable[[Run, Any], Awaitable[None]]
    arrange: Callable[[Run], Awaitable[None]] | None = None
    drop: Callable[[bytes], bool] = commit


async def _queued(run: Run) -> None:
    run.seeded["media_id"], run.seeded["queue_id"] = await seed_queued(run.sessions)


async def _sending(run: Run) -> None:
    await _queued(run)
    async with run.sessions() as session, session.begin():
        await session.execute(
            text(
                "UPDATE posting_queue SET status = 'sending', telegram_message_id = NULL,"
                " send_attempts = 1 WHERE id = :id"
            ),
            {"id": run.seeded["queue_id"]},
        )
        media = await MediaRepository(session).get(run.seeded["media_id"])
        assert media is not None
        run.seeded["item"] = ClaimedItem.of(run.seeded["queue_id"], media)


def _press_case(status: str, lock_reason: str) -> DroppedReply:
    async def act(run: Run) -> Any:
        return await run.services.press.record(
            Press(run.seeded["queue_id"], TEAM_CHAT, Verdict(status), ALICE.identity)
        )

    async def check(run: Run, outcome: Any) -> None:
        assert (outcome.kind, outcome.status) == (OutcomeKind.RECORDED, status)
        history = await fetch_all(run.sessions, "SELECT status FROM posting_history")
        assert [row.status for row in history] == [status]
        locks = await fetch_all(run.sessions, "SELECT reason FROM media_locks")
        assert [lock.reason for lock in locks] == [lock_reason]
        [presser] = await fetch_all(run.sessions, "SELECT total_posts FROM users")
        assert presser.total_posts == (1 if status == "posted" else 0)
        assert await fetch_all(run.sessions, "SELECT 1 FROM posting_queue") == []
        interactions = await fetch_all(run.sessions, "SELECT name FROM user_interactions")
        assert [row.name for row in interactions] == [f"press:{status}"]

    return DroppedReply(
        f"press.{status}", act, check, arrange=_queued, drop=press_statement(status)
    )


async def _chats_unchanged(run: Run) -> None:
    chats = await fetch_all(run.sessions, "SELECT telegram_chat_id FROM chat_settings")
    assert [chat.telegram_chat_id for chat in chats] == [TEAM_CHAT]


async def _register_chat(run: Run) -> Any:
    return await run.services.team.register_chat(OTHER_CHAT, "Second team")


async def _registered_once(run: Run, result: Any) -> None:
    rows = await fetch_all(
        run.sessions,
        "SELECT title FROM chat_settings WHERE telegram_chat_id = :chat",
        chat=OTHER_CHAT,
    )
    assert [row.title for row in rows] == ["Second team"]


async def _status(run: Run) -> Any:
    return await run.services.team.status(TEAM_CHAT, datetime.now(UTC))


async def _chat(run: Run) -> Any:
    return await run.services.team.chat(TEAM_CHAT)


async def _chat_read(run: Run, chat: Any) -> None:
    assert chat.telegram_chat_id == TEAM_CHAT
    await _chats_unchanged(run)


async def _in_flight(run: Run) -> Any:
    return await run.services.team.in_flight(TEAM_CHAT)


async def _one_in_flight(run: Run, rows: Any) -> None:
    assert [queue.id for queue, _ in rows] == [run.seeded["queue_id"]]
    assert len(await fetch_all(run.sessions, "SELECT 1 FROM posting_queue")) == 1


async def _history(run: Run) -> Any:
    return await run.services.team.history(TEAM_CHAT, 10)


async def _stats(run: Run) -> Any:
    return await run.services.team.stats(TEAM_CHAT, datetime.now(UTC))


async def _read_nothing_written(run: Run, result: Any) -> None:
    assert result is not None
    await _chats_unchanged(run)
    assert await fetch_all(run.sessions, "SELECT 1 FROM posting_history") == []


async def _record_sent(run: Run) -> Any:
    return await run.services.scheduler.delivery._record_sent(run.seeded["item"], 777, "file-777")


async def _recorded_as_sent(run: Run, result: Any) -> None:
    [row] = await fetch_all(
        run.sessions, "SELECT status, telegram_message_id, send_attempts FROM posting_queue"
    )
    assert (row.status, row.telegram_message_id, row.send_attempts) == ("sent", 777, 1)
    [media] = await fetch_all(run.sessions, "SELECT telegram_file_id FROM media_items")
    assert media.telegram_file_id == "file-777"


async def _give_up(run: Run) -> Any:
    return await run.services.scheduler.delivery._failed(
        run.seeded["item"], "Telegram said no", maybe_delivered=False
    )


async def _failed_once(run: Run, result: Any) -> None:
    history = await fetch_all(run.sessions, "SELECT status, error_message FROM posting_history")
    assert [(row.status, row.error_message) for row in history] == [("failed", "Telegram said no")]
    assert await fetch_all(run.sessions, "SELECT 1 FROM posting_queue") == []


async def _two_locks(run: Run) -> None:
    media_ids = await seed_media(run.sessions, count=2)
    now = datetime.now(UTC)
    async with run.sessions() as session, session.begin():
        for media_id, until in zip(
            media_ids, (now - timedelta(days=1), now + timedelta(days=1)), strict=True
        ):
            await session.execute(
                text(
                    "INSERT INTO media_locks (media_item_id, reason, locked_until)"
                    " VALUES (:media, 'skip', :until)"
                ),
                {"media": media_id, "until": until},
            )
    run.seeded["live"] = media_ids[1]


async def _purge_locks(run: Run) -> Any:
    return await run.services.scheduler.delete_expired_locks()


async def _only_the_live_lock_left(run: Run, result: Any) -> None:
    locks = await fetch_all(run.sessions, "SELECT media_item_id FROM media_locks")
    assert [lock.media_item_id for lock in locks] == [run.seeded["live"]]


NEW_SUPERGROUP = -1009009009


async def _follow_upgrade(run: Run) -> Any:
    bot = run.services.token_care.bot
    return await run.services.chat_directory.follow(TEAM_CHAT, NEW_SUPERGROUP, bot)


async def _moved_once_and_told_once(run: Run, result: Any) -> None:
    chats = await fetch_all(run.sessions, "SELECT telegram_chat_id FROM chat_settings")
    assert [chat.telegram_chat_id for chat in chats] == [NEW_SUPERGROUP]
    queue = await fetch_all(run.sessions, "SELECT chat_id FROM posting_queue")
    assert [row.chat_id for row in queue] == [NEW_SUPERGROUP]
    [moved] = await fetch_all(run.sessions, "SELECT new_chat_id, team_told_at FROM chat_migrations")
    assert moved.new_chat_id == NEW_SUPERGROUP and moved.team_told_at is not None
    telegram = run.services.token_care.bot.session
    assert isinstance(telegram, RecordingSession)
    assert [m.chat_id for m in telegram.of(SendMessage)] == [NEW_SUPERGROUP]


async def _drop_in_flight(run: Run) -> Any:
    return await run.services.inflight.drop(run.seeded["queue_id"], TEAM_CHAT, 500)


async def _dropped(run: Run, outcome: Any) -> None:
    assert outcome is InFlightOutcome.DROPPED
    assert await fetch_all(run.sessions, "SELECT 1 FROM posting_queue") == []
    assert await fetch_all(run.sessions, "SELECT 1 FROM posting_history") == []


async def _queued_with_file_id(run: Run) -> None:
    await _queued(run)
    async with run.sessions() as session, session.begin():
        await session.execute(text("UPDATE media_items SET telegram_file_id = 'file-1'"))


async def _resend_in_flight(run: Run) -> Any:
    return await run.services.inflight.resend(run.seeded["queue_id"], TEAM_CHAT, 500)


async def _resent_once(run: Run, outcome: Any) -> None:
    assert outcome is InFlightOutcome.RESENT
    telegram = run.services.token_care.bot.session
    assert isinstance(telegram, RecordingSession)
    assert len(telegram.of(SendPhoto)) == 1
    [row] = await fetch_all(run.sessions, "SELECT status, telegram_message_id FROM posting_queue")
    assert row.status == "sent" and row.telegram_message_id not in (None, 500)


async def _sent_long_ago(run: Run) -> None:
    await _queued(run)
    async with run.sessions() as session, session.begin():
        await session.execute(text("UPDATE posting_queue SET sent_at = now() - interval '8 days'"))


async def _return_unpressed(run: Run) -> Any:
    return await run.services.scheduler.return_unpressed()


async def _returned_and_told(run: Run, returned: Any) -> None:
    assert [item.queue_id for item in returned] == [run.seeded["queue_id"]]
    assert await fetch_all(run.sessions, "SELECT 1 FROM posting_queue") == []
    telegram = run.services.token_care.bot.session
    assert isinstance(telegram, RecordingSession)
    assert len(telegram.of(SendMessage)) == 1


async def _running_low(run: Run) -> None:
    await seed_media(run.sessions, count=3)  # under a day at 3 a day: below the 7-day warning


async def _runway_check(run: Run) -> Any:
    return await run.services.runway.check(TEAM_CHAT)


async def _warned_once(run: Run, sent: Any) -> None:
    assert sent is True  # the mark's COMMIT landed unheard: the re-read finds our stamp
    [chat] = await fetch_all(run.sessions, "SELECT runway_warned_at FROM chat_settings")
    assert chat.runway_warned_at is not None
    telegram = run.services.runway.bot.session
    assert isinstance(telegram, RecordingSession)
    assert len(telegram.of(SendMessage)) == 1
    assert await run.services.runway.check(TEAM_CHAT) is False
    assert len(telegram.of(SendMessage)) == 1


async def _export(run: Run) -> Any:
    return await run.services.team.export(TEAM_CHAT)


CASES: list[DroppedReply] = [
    _press_case("posted", "recent_post"),
    _press_case("skipped", "skip"),
    _press_case("rejected", "rejected"),
    DroppedReply("team.register_chat", _register_chat, _registered_once),
    DroppedReply("team.status", _status, _read_nothing_written),
    DroppedReply("team.chat", _chat, _chat_read),
    DroppedReply("team.in_flight", _in_flight, _one_in_flight, arrange=_queued),
    DroppedReply("team.history", _history, _read_nothing_written),
    DroppedReply("team.stats", _stats, _read_nothing_written),
    DroppedReply("delivery.record_sent", _record_sent, _recorded_as_sent, arrange=_sending),
    DroppedReply("delivery.give_up", _give_up, _failed_once, arrange=_sending),
    DroppedReply("scheduler.locks", _purge_locks, _only_the_live_lock_left, arrange=_two_locks),
    DroppedReply(
        "chats.follow_migration", _follow_upgrade, _moved_once_and_told_once, arrange=_queued
    ),
    DroppedReply("inflight.drop", _drop_in_flight, _dropped, arrange=_queued),
    DroppedReply("inflight.resend", _resend_in_flight, _resent_once, arrange=_queued_with_file_id),
    DroppedReply(
        "scheduler.return_unpressed", _return_unpressed, _returned_and_told, arrange=_sent_long_ago
    ),
    DroppedReply(
        "runway.mark_warned", _runway_check, _warned_once, _running_low, drop=nth_commit(2)
    ),
    DroppedReply("team.export", _export, _read_nothing_written),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_a_unit_whose_last_reply_is_lost_happens_once(
    case: DroppedReply, proxy: PgProxy, proxied_engines: ProxiedEngines, settings: Settings
) -> None:
    engine = proxied_engines.open()
    sessions = create_session_factory(engine)
    services = build_services(
        settings,
        Database(engine=engine, sessions=sessions),
        create_bot(settings, session=RecordingSession()),
    )
    try:
        await seed_chat(sessions)
        run = Run(services=services, sessions=sessions)
        if case.arrange is not None:
            await case.arrange(run)
        proxy.cut_after_reply_to(case.drop)

        result = await case.act(run)

        assert proxy.cuts == 1, "the reply was not dropped: the case's `drop` matched nothing"
        await case.check(run, result)
    finally:
        await services.close()


def test_every_case_has_a_unique_name() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
