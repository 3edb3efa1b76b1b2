"""Items Telegram refuses for good are set aside, announced once, and never cost the slot."""

from __future__ import annotations

import errno
import uuid
from datetime import timedelta
from typing import Any

import pytest
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import AnswerCallbackQuery, SendMessage, SendPhoto
from aiogram.types import InlineKeyboardMarkup

from bot.presentation.keyboards import PutBackCallback
from bot.presentation.texts import MESSAGE_LIMIT, set_aside_notice
from bot.services.library import LibraryIndexer
from db.repositories.media import eligible_query
from tests.helpers.fake_telegram_session import callback_update, command_update, text_message
from tests.helpers.pgproxy import PgProxy, ProxiedTeam, commit_after
from tests.helpers.scheduling import NOW, make_scheduler, seed_library, seed_window
from tests.helpers.support import (
    ADA,
    ALICE,
    JPEG,
    TEAM_CHAT,
    Clock,
    TestApp,
    execute,
    fetch_all,
    seed_media,
)

PHOTO = SendPhoto(chat_id=TEAM_CHAT, photo="x")


async def _in_this_order(app: TestApp, ids: list[uuid.UUID]) -> None:
    """The selection takes `ids` in this order (fewest posts first)."""
    for times, media_id in enumerate(ids):
        await execute(
            app.sessions,
            "UPDATE media_items SET times_posted = :t WHERE id = :i",
            t=times,
            i=media_id,
        )


def _refused(description: str = "Bad Request: IMAGE_PROCESS_FAILED") -> TelegramBadRequest:
    return TelegramBadRequest(method=PHOTO, message=description)


async def _set_aside(app: TestApp) -> dict[uuid.UUID, tuple[Any, Any]]:
    rows = await fetch_all(
        app.sessions, "SELECT id, set_aside_at, set_aside_reason FROM media_items"
    )
    return {row.id: (row.set_aside_at, row.set_aside_reason) for row in rows}


def _file_of(photo: SendPhoto) -> str:
    """The file name in a sent caption."""
    return str(photo.caption).split("<code>", 1)[1].split("</code>", 1)[0]


def _notices(app: TestApp) -> list[SendMessage]:
    return [m for m in app.telegram.of(SendMessage) if "Set aside" in m.text]


def _put_back_data(notice: SendMessage) -> str:
    assert isinstance(notice.reply_markup, InlineKeyboardMarkup)
    [[button]] = notice.reply_markup.inline_keyboard
    assert button.text == "↩️ Put back"
    return str(button.callback_data)


async def test_a_refused_item_is_set_aside_announced_once_and_the_slot_goes_to_the_next(
    app: TestApp,
) -> None:
    await seed_window(app)
    ids = await seed_library(app, count=3)
    app.telegram.fail_next(SendPhoto, _refused())
    clock = Clock(NOW)
    scheduler = make_scheduler(app, clock)

    await scheduler.tick()

    photos = app.telegram.of(SendPhoto)
    assert len(photos) == 2  # the refused one, then the next one in the same slot
    refused, accepted = (ids[int(_file_of(photo)[4])] for photo in photos)
    states = await _set_aside(app)
    assert states[refused][0] is not None and "IMAGE_PROCESS_FAILED" in states[refused][1]
    assert states[accepted][0] is None
    [notice] = _notices(app)
    assert f"cat/{_file_of(photos[0])}" in notice.text and "IMAGE_PROCESS_FAILED" in notice.text
    assert "index" in notice.text and "Put back" in notice.text
    assert _put_back_data(notice) == PutBackCallback(media_id=refused).pack()
    [failed] = await fetch_all(app.sessions, "SELECT media_item_id, status FROM posting_history")
    assert (failed.media_item_id, failed.status) == (refused, "failed")

    # The next slots go to the others; the refused one is never tried again.
    for _ in range(2):
        clock.now += timedelta(hours=1)
        await scheduler.tick()
    sent = [_file_of(photo) for photo in app.telegram.of(SendPhoto)]
    assert len(sent) == 3 and sorted(sent[1:]) == sorted(
        {"item0.jpg", "item1.jpg", "item2.jpg"} - {sent[0]}
    )
    assert len(_notices(app)) == 1


async def test_a_too_large_file_and_a_missing_file_are_set_aside(app: TestApp) -> None:
    await seed_window(app)
    big, missing, good = await seed_library(app, count=3)
    await _in_this_order(app, [big, missing, good])
    (app.settings.media_dir / "cat" / "item1.jpg").unlink()
    app.telegram.fail_next(
        SendPhoto, TelegramEntityTooLarge(method=PHOTO, message="Request Entity Too Large")
    )
    await make_scheduler(app, Clock(NOW)).tick()

    states = await _set_aside(app)
    assert states[big][0] is not None and states[missing][0] is not None
    assert "not found" in states[missing][1]
    assert states[good][0] is None
    assert len(app.telegram.of(SendPhoto)) == 2  # the missing file never reached Telegram
    assert len(_notices(app)) == 2
    [row] = await fetch_all(app.sessions, "SELECT media_item_id, status FROM posting_queue")
    assert (row.media_item_id, row.status) == (good, "sent")


async def test_a_library_of_bad_files_costs_a_bounded_number_of_tries_per_slot(
    app: TestApp,
) -> None:
    await seed_window(app)
    await seed_library(app, count=5)
    for _ in range(5):
        app.telegram.fail_next(SendPhoto, _refused())
    await make_scheduler(app, Clock(NOW)).tick()

    assert len(app.telegram.of(SendPhoto)) == 3
    set_aside = [m for m, (at, _) in (await _set_aside(app)).items() if at]
    assert len(set_aside) == 3 and len(_notices(app)) == 3


def _transient(kind: str) -> list[Exception]:
    if kind == "5xx":
        return [TelegramServerError(method=PHOTO, message="Bad Gateway")] * 3
    if kind == "429":
        return [TelegramRetryAfter(method=PHOTO, message="Too Many Requests", retry_after=0)] * 3
    if kind == "timeout":
        return [TelegramNetworkError(method=PHOTO, message="Request timeout")] * 2
    if kind == "kicked":
        return [TelegramForbiddenError(method=PHOTO, message="Forbidden: bot was kicked")]
    if kind == "no rights":
        return [_refused("Bad Request: not enough rights to send photos to the chat")]
    # Other answers Telegram gives about the chat (or its topic), never about the file.
    return [_refused(f"Bad Request: {kind}")]


@pytest.mark.parametrize(
    "kind",
    [
        "5xx",
        "429",
        "timeout",
        "kicked",
        "chat not found",
        "no rights",
        "PEER_ID_INVALID",
        "CHANNEL_PRIVATE",
        "message thread not found",
        "CHAT_SEND_PHOTOS_FORBIDDEN",
    ],
)
async def test_transient_and_chat_level_failures_never_set_an_item_aside(
    app: TestApp, kind: str
) -> None:
    await seed_window(app)
    await seed_library(app, count=2)
    for error in _transient(kind):
        app.telegram.fail_next(SendPhoto, error)
    await make_scheduler(app, Clock(NOW)).tick()

    assert all(at is None for at, _ in (await _set_aside(app)).values())
    assert _notices(app) == []
    # No second item for the slot: the trouble was not the item's.
    assert len({_file_of(photo) for photo in app.telegram.of(SendPhoto)}) == 1


async def test_a_missing_media_dir_sets_nothing_aside(app: TestApp) -> None:
    """MEDIA_DIR gone (an unmounted share): no file is to blame, the library stays as it is."""
    await seed_window(app)
    await seed_library(app, count=3)
    app.settings.media_dir.rename(app.settings.media_dir.with_name("unmounted"))
    await make_scheduler(app, Clock(NOW)).tick()

    assert all(at is None for at, _ in (await _set_aside(app)).values())
    assert _notices(app) == []
    [failed] = await fetch_all(app.sessions, "SELECT status FROM posting_history")
    assert failed.status == "failed"  # one try for the slot, not three items


async def test_a_passing_file_system_fault_sets_nothing_aside(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of file descriptors is the process's trouble, not the file's."""
    await seed_window(app)
    await seed_library(app, count=2)

    def exhausted(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr("bot.presentation.notifier.FSInputFile", exhausted)
    await make_scheduler(app, Clock(NOW)).tick()

    assert all(at is None for at, _ in (await _set_aside(app)).values())
    assert _notices(app) == []


async def test_next_sends_the_next_item_when_one_is_refused(app: TestApp) -> None:
    bad, good = await seed_library(app, count=2)
    await _in_this_order(app, [bad, good])
    app.telegram.fail_next(SendPhoto, _refused())
    result = await make_scheduler(app, Clock(NOW)).send_now(TEAM_CHAT)

    assert result.sent
    [row] = await fetch_all(app.sessions, "SELECT media_item_id FROM posting_queue")
    assert row.media_item_id == good
    assert (await _set_aside(app))[bad][0] is not None


async def test_next_says_the_rest_is_set_aside_not_locked(app: TestApp) -> None:
    await seed_library(app, count=2)
    await execute(
        app.sessions, "UPDATE media_items SET set_aside_at = now(), set_aside_reason = 'x'"
    )

    await app.feed(command_update("/next", TEAM_CHAT, ALICE.user))

    reply = app.telegram.of(SendMessage)[-1].text
    assert "2 set aside" in reply and "/queue" in reply and "0 locked" in reply
    assert app.telegram.of(SendPhoto) == []


async def test_a_lost_commit_reply_still_announces_once(
    app: TestApp,
    proxy: PgProxy,
    proxied: Any,
) -> None:
    """The set-aside COMMIT lands but its reply is lost: the retry finds it was ours."""
    await seed_window(app)
    [bad] = await seed_library(app)
    app.telegram.fail_next(SendPhoto, _refused())
    proxy.cut_after_reply_to(commit_after(b"set_aside_at=now()"))
    await make_scheduler(app, Clock(NOW), sessions=proxied).tick()

    assert proxy.cuts == 1
    assert (await _set_aside(app))[bad][0] is not None
    assert len(_notices(app)) == 1
    assert len(await fetch_all(app.sessions, "SELECT 1 FROM posting_history")) == 1


async def test_a_changed_file_comes_back_on_index_an_unchanged_one_stays_aside(
    app: TestApp,
) -> None:
    media = app.settings.media_dir
    (media / "cat").mkdir(parents=True)
    (media / "cat" / "bad.jpg").write_bytes(JPEG + b"bad")
    indexer = LibraryIndexer(app.sessions)
    await indexer.index(media, TEAM_CHAT)
    await seed_window(app)
    app.telegram.fail_next(SendPhoto, _refused())
    await make_scheduler(app, Clock(NOW)).tick()
    [(at, _)] = (await _set_aside(app)).values()
    assert at is not None

    await indexer.index(media, TEAM_CHAT)  # nothing changed: still aside
    [(at, _)] = (await _set_aside(app)).values()
    assert at is not None

    (media / "cat" / "bad.jpg").write_bytes(JPEG + b"fixed, a little longer")
    report = await indexer.index(media, TEAM_CHAT)
    assert report.updated == 1
    [(at, reason)] = (await _set_aside(app)).values()
    assert (at, reason) == (None, None)
    async with app.sessions() as session:
        assert len(list((await session.execute(eligible_query(TEAM_CHAT, NOW))).scalars())) == 1


async def _press_put_back(app: TestApp, media_id: uuid.UUID, who: Any) -> str | None:
    data = PutBackCallback(media_id=media_id).pack()
    await app.feed(callback_update(data, text_message(TEAM_CHAT, 900, "⚠️ Set aside"), who))
    await app.services.tasks.drain(5)
    return app.telegram.of(AnswerCallbackQuery)[-1].text


async def test_an_admin_puts_an_item_back_once_and_a_member_cannot(app: TestApp) -> None:
    [media_id] = await seed_media(app.sessions)
    await execute(
        app.sessions,
        "UPDATE media_items SET set_aside_at = now(), set_aside_reason = 'IMAGE_PROCESS_FAILED'",
    )
    assert "Only admins" in (await _press_put_back(app, media_id, ALICE.user) or "")
    assert (await _set_aside(app))[media_id][0] is not None

    assert await _press_put_back(app, media_id, ADA.user) == "↩️ Put back: it can be sent again."
    assert (await _set_aside(app))[media_id] == (None, None)
    assert await _press_put_back(app, media_id, ADA.user) == "Already back: it can be sent."
    logged = await fetch_all(
        app.sessions, "SELECT name FROM user_interactions WHERE name = 'media.put_back'"
    )
    assert len(logged) == 1


async def test_an_item_put_back_is_uploaded_again_not_sent_by_its_refused_file_id(
    app: TestApp,
) -> None:
    """Telegram refused the cached file id: Put back must not retry that same id for ever."""
    await seed_window(app)
    [media_id] = await seed_library(app, telegram_file_id="cached-id")
    app.telegram.fail_next(SendPhoto, _refused("Bad Request: PHOTO_INVALID_DIMENSIONS"))
    clock = Clock(NOW)
    scheduler = make_scheduler(app, clock)
    await scheduler.tick()
    assert app.telegram.of(SendPhoto)[0].photo == "cached-id"

    assert await _press_put_back(app, media_id, ADA.user) == "↩️ Put back: it can be sent again."
    clock.now += timedelta(hours=1)
    await scheduler.tick()

    second = app.telegram.of(SendPhoto)[1].photo
    assert not isinstance(second, str)  # uploaded from MEDIA_DIR
    assert (await _set_aside(app))[media_id][0] is None


async def test_status_counts_and_queue_lists_the_items_set_aside(app: TestApp) -> None:
    await seed_media(app.sessions, count=3)
    await execute(
        app.sessions,
        "UPDATE media_items SET set_aside_at = now(), set_aside_reason = 'PHOTO_INVALID_DIMENSIONS'"
        " WHERE file_name IN ('item0.jpg', 'item1.jpg')",
    )
    await app.feed(command_update("/status", TEAM_CHAT, ALICE.user))
    status = app.telegram.of(SendMessage)[-1].text
    assert "Set aside: 2" in status and "1 eligible now" in status

    await app.feed(command_update("/queue", TEAM_CHAT, ALICE.user))
    listing = app.telegram.of(SendMessage)[-1].text
    assert "2 set aside" in listing and "cat/item1.jpg" in listing
    assert "PHOTO_INVALID_DIMENSIONS" in listing
    buttons = app.telegram.of(SendMessage)[-1].reply_markup
    assert isinstance(buttons, InlineKeyboardMarkup)
    assert sorted(row[0].text for row in buttons.inline_keyboard) == [
        "↩️ item0.jpg",
        "↩️ item1.jpg",
    ]


# -- no twin in flight ------------------------------------------------------------------


@pytest.mark.parametrize("status", ["sending", "sent", "publishing"])
async def test_a_hash_twin_in_flight_keeps_an_item_out_of_the_selection(
    app: TestApp, status: str
) -> None:
    first, twin = await seed_media(app.sessions, count=2, file_hash="ab" * 32)
    [other] = await seed_media(app.sessions, prefix="other")
    await execute(
        app.sessions,
        "INSERT INTO posting_queue (media_item_id, chat_id, status) VALUES (:m, :c, :s)",
        m=first,
        c=TEAM_CHAT,
        s=status,
    )
    async with app.sessions() as session:
        eligible = {m.id for m in (await session.execute(eligible_query(TEAM_CHAT, NOW))).scalars()}
    assert eligible == {other}
    assert twin not in eligible


async def test_a_twin_is_not_sent_while_its_copy_waits_in_the_chat(app: TestApp) -> None:
    await seed_window(app)
    await seed_media(app.sessions, count=2, file_hash="cd" * 32)
    (app.settings.media_dir / "cat").mkdir(parents=True)
    for index in range(2):
        (app.settings.media_dir / "cat" / f"item{index}.jpg").write_bytes(JPEG)
    clock = Clock(NOW)
    scheduler = make_scheduler(app, clock)
    await scheduler.tick()
    clock.now += timedelta(hours=1)
    await scheduler.tick()

    assert len(app.telegram.of(SendPhoto)) == 1  # the copy waits for a press


async def test_a_lost_commit_reply_of_put_back_still_says_put_back(
    proxied_team: ProxiedTeam,
) -> None:
    team, proxy, sessions = proxied_team
    [media_id] = await seed_media(sessions)
    await execute(sessions, "UPDATE media_items SET set_aside_at = now(), set_aside_reason = 'x'")
    proxy.cut_after_reply_to(lambda data: b"COMMIT" in data)
    assert await team.put_back(TEAM_CHAT, ADA.identity, media_id) is True  # not "already back"
    assert proxy.cuts == 1
    assert await team.put_back(TEAM_CHAT, ADA.identity, media_id) is False  # a real double tap
    [row] = await fetch_all(sessions, "SELECT set_aside_at FROM media_items")
    assert row.set_aside_at is None


def test_a_notice_for_a_very_long_path_still_fits_one_message() -> None:
    """The reason repeats the path: a deep path must not push the notice past Telegram's limit."""
    path = "cat/" + "deep/" * 900 + "x.jpg"
    notice = set_aside_notice(path, f"media file not found: {path}")
    assert len(notice.encode("utf-16-le")) // 2 <= MESSAGE_LIMIT
    assert "media file not found" in notice
