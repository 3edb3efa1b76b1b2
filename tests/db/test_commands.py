"""Team commands through the dispatcher, against the real database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from aiogram.exceptions import ClientDecodeError
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    GetChatAdministrators,
    SendMessage,
    SetMyCommands,
)
from aiogram.types import ChatMemberOwner
from pydantic import ValidationError
from sqlalchemy import text

from bot.handlers.commands import register_commands
from bot.presentation.keyboards import SettingsCallback
from db.repositories import Interaction
from db.vocabulary import InteractionKind
from tests.helpers.fake_telegram_session import (
    callback_update,
    queue_message,
    text_message,
)
from tests.helpers.pgproxy import PgProxy, ProxiedTeam
from tests.helpers.support import (
    ADA,
    ALICE,
    CAROL,
    OTHER_CHAT,
    TEAM_CHAT,
    TestApp,
    fetch_all,
    say,
    seed_chat,
    seed_history,
    seed_media,
    seed_queue_item,
)

ADMIN = ADA.user  # in ADMIN_USER_IDS
MEMBER = ALICE.user
CHAT_ADMIN = CAROL.user  # an admin through Telegram's list only


async def test_start_registers_and_explains(app: TestApp) -> None:
    reply = await say(app, "/start")
    assert "Story queue" in reply and "/help" in reply
    [logged] = await fetch_all(app.sessions, "SELECT kind, name FROM user_interactions")
    assert (logged.kind, logged.name) == ("command", "start")
    [member] = await fetch_all(app.sessions, "SELECT telegram_user_id FROM users")
    assert member.telegram_user_id == MEMBER.id


async def test_help_lists_every_command(app: TestApp) -> None:
    reply = await say(app, "/help")
    for name in ("status", "queue", "next", "history", "stats", "pause", "resume", "settings"):
        assert f"/{name}" in reply


async def test_private_chat_only_start_and_help(app: TestApp) -> None:
    assert "Story queue" in await say(app, "/start", chat_id=MEMBER.id, chat_type="private")
    assert "only answer /start and /help" in await say(
        app, "/status", chat_id=MEMBER.id, chat_type="private"
    )


async def test_a_chat_the_bot_does_not_serve_is_refused(app: TestApp) -> None:
    assert "only work in my team's chat" in await say(app, "/status", chat_id=OTHER_CHAT)
    assert (
        await fetch_all(
            app.sessions, "SELECT 1 FROM chat_settings WHERE telegram_chat_id = :c", c=OTHER_CHAT
        )
        == []
    )


async def _history_rows(app: TestApp, count: int) -> None:
    ids = await seed_media(app.sessions, count=count)
    for position, media_id in enumerate(ids):
        await seed_history(
            app.sessions,
            media_id,
            acted_by_name="Bob",
            acted_at=datetime.now(UTC) - timedelta(hours=position + 2),
        )


async def test_status(app: TestApp) -> None:
    await say(app, "/pause", who=ADMIN)
    await _history_rows(app, 2)
    [media_id] = await seed_media(app.sessions, prefix="queued")
    await seed_queue_item(app.sessions, media_id)
    reply = await say(app, "/status")
    assert "Paused</b> by Ada since" in reply
    assert "In flight: 1" in reply
    assert "Last post: <code>item0.jpg</code> by Bob, 2 h ago" in reply
    assert "Library: 3 items, 2 eligible now" in reply
    assert "Runway: less than a day left at 3 a day" in reply


async def test_status_running_shows_next_slot(app: TestApp) -> None:
    reply = await say(app, "/status")
    assert "Running" in reply and "Next slot:" in reply and "(UTC)" in reply
    assert "Last post: none yet" in reply


async def test_queue(app: TestApp) -> None:
    assert "Nothing is waiting" in await say(app, "/queue")
    [media_id] = await seed_media(app.sessions)
    await seed_queue_item(app.sessions, media_id)
    reply = await say(app, "/queue")
    assert "1 in flight" in reply and "item0.jpg" in reply and "waiting for a press" in reply


async def test_history_default_n_and_bad_input(app: TestApp) -> None:
    await _history_rows(app, 12)
    assert (await say(app, "/history")).count("\n") == 10
    assert (await say(app, "/history 2")).count("\n") == 2
    assert "Usage: /history [n]" in await say(app, "/history 99999")
    assert "Usage: /history [n]" in await say(app, "/history abc")
    assert "Usage: /history [n]" in await say(app, "/history ²")
    assert "Usage: /history [n]" in await say(app, "/history ٣")


def _visible_length(html: str) -> int:
    """What Telegram counts: the text without tags and entities, in UTF-16 units."""
    plain = unescape(re.sub(r"<[^>]+>", "", html))
    return len(plain.encode("utf-16-le")) // 2


async def test_long_queue_and_history_fit_in_one_message(app: TestApp) -> None:
    long_name = "🎬" + "very-long-file-name-" * 12 + ".jpg"
    ids = await seed_media(app.sessions, count=50, prefix=long_name)
    for index, media_id in enumerate(ids):
        await seed_queue_item(app.sessions, media_id, message_id=1000 + index)
    reply = await say(app, "/queue")
    assert reply.startswith("📬 <b>50 in flight</b>")
    assert len(reply.encode("utf-16-le")) // 2 <= 4096
    shown = reply.count("waiting for a press")
    assert 0 < shown < 50
    assert reply.endswith(f"… and {50 - shown} more not shown")

    async with app.sessions() as session, session.begin():
        await session.execute(text("DELETE FROM posting_queue"))
        await session.execute(
            text(
                "INSERT INTO posting_history (media_item_id, chat_id, status, success,"
                " acted_by_name) SELECT id, chat_id, 'posted', true, 'Bob & <Co>'"
                " FROM media_items"
            )
        )
    reply = await say(app, "/history 50")
    assert _visible_length(reply) <= 4096 and len(reply.encode("utf-16-le")) // 2 <= 4096
    shown = reply.count("posted by Bob &amp; &lt;Co&gt;")
    assert 0 < shown < 50
    assert reply.endswith(f"… and {50 - shown} more not shown")


async def test_stats(app: TestApp) -> None:
    await _history_rows(app, 1)
    assert "No presses recorded yet" in await say(app, "/stats")  # rows without a person
    [media_id] = await seed_media(app.sessions, prefix="s")
    queue_id = await seed_queue_item(app.sessions, media_id)
    from bot.presentation.keyboards import QueueAction, QueueCallback

    await app.feed(
        callback_update(
            QueueCallback(action=QueueAction.SKIP, queue_id=queue_id).pack(),
            queue_message(TEAM_CHAT, 500, "📄 s0.jpg"),
            MEMBER,
        )
    )
    reply = await say(app, "/stats")
    assert "Alice: 7d 0/1/0 · 30d 0/1/0 · all 0/1/0" in reply


async def test_pause_and_resume_are_for_admins(app: TestApp) -> None:
    app.telegram.admins[TEAM_CHAT] = [CHAT_ADMIN.id]
    assert "Only admins" in await say(app, "/pause", who=MEMBER)
    [chat] = await fetch_all(app.sessions, "SELECT is_paused FROM chat_settings")
    assert chat.is_paused is False

    assert "Paused" in await say(app, "/pause", who=ADMIN)
    assert "Already paused" in await say(app, "/pause", who=ADMIN)
    [chat] = await fetch_all(
        app.sessions,
        "SELECT c.is_paused, c.paused_at, u.telegram_user_id"
        " FROM chat_settings c JOIN users u"
        " ON u.id = c.paused_by_user_id",
    )
    assert chat.is_paused and chat.paused_at is not None and chat.telegram_user_id == ADMIN.id

    assert "Resumed" in await say(app, "/resume", who=CHAT_ADMIN)
    [chat] = await fetch_all(app.sessions, "SELECT is_paused, paused_by_user_id FROM chat_settings")
    assert (chat.is_paused, chat.paused_by_user_id) == (False, None)


async def _settings_press(app: TestApp, field: str, value: int = 0, who=ADMIN) -> str | None:
    data = SettingsCallback(field=field, value=value).pack()
    message = text_message(TEAM_CHAT, 900, "⚙️ Settings")
    await app.feed(callback_update(data, message, who))
    return app.telegram.of(AnswerCallbackQuery)[-1].text


def _button_data(keyboard: Any, row: int, column: int) -> str:
    return str(keyboard.inline_keyboard[row][column].callback_data)


async def _changes(app: TestApp) -> list[Any]:
    rows = await fetch_all(
        app.sessions,
        "SELECT context FROM user_interactions WHERE name = 'settings.change' ORDER BY created_at",
    )
    return [row.context for row in rows]


async def test_settings_round_trip(app: TestApp) -> None:
    reply = await say(app, "/settings", who=ADMIN)
    assert "Posts per day: 3" in reply
    keyboard = app.telegram.of(SendMessage)[-1].reply_markup
    assert [b.text for b in keyboard.inline_keyboard[1]] == ["➖", "3 a day", "➕"]
    # Each button carries the value it sets.
    assert _button_data(keyboard, 0, 0) == "set:pause:1"
    assert _button_data(keyboard, 0, 1) == "set:dry:1"
    assert _button_data(keyboard, 1, 2) == "set:ppd:4"
    assert _button_data(keyboard, 2, 0) == "set:start:8"

    assert await _settings_press(app, "ppd", 4) == "Saved"
    edit = app.telegram.of(EditMessageText)[-1]
    assert "Posts per day: 4" in edit.text
    assert [b.text for b in edit.reply_markup.inline_keyboard[1]] == ["➖", "4 a day", "➕"]
    assert _button_data(edit.reply_markup, 1, 2) == "set:ppd:5"
    assert await _settings_press(app, "dry", 1) == "Saved"
    assert await _settings_press(app, "start", 8) == "Saved"
    assert await _settings_press(app, "end", 22) == "Saved"
    assert await _settings_press(app, "pause", 1) == "Saved"

    [chat] = await fetch_all(
        app.sessions,
        "SELECT posts_per_day, dry_run, posting_hours_start,"
        " posting_hours_end, is_paused FROM chat_settings",
    )
    assert tuple(chat) == (4, True, 8, 22, True)
    changes = await _changes(app)
    assert changes[0] == {"field": "posts_per_day", "old": 3, "new": 4}
    assert len(changes) == 5


async def test_double_tap_and_stale_buttons_set_once(app: TestApp) -> None:
    """ "Dry run: off" tapped twice leaves it on; a stale "➕" sets its own number."""
    assert await _settings_press(app, "dry", 1) == "Saved"
    assert await _settings_press(app, "dry", 1) == "Already set"
    assert await _settings_press(app, "ppd", 4) == "Saved"
    assert await _settings_press(app, "ppd", 4) == "Already set"  # the same ➕, again
    assert await _settings_press(app, "start", 0) == "Saved"
    assert await _settings_press(app, "start", 23) == "Saved"  # ➖ at midnight wraps
    [chat] = await fetch_all(
        app.sessions, "SELECT dry_run, posts_per_day, posting_hours_start FROM chat_settings"
    )
    assert tuple(chat) == (True, 4, 23)
    assert [c["field"] for c in await _changes(app)] == [
        "dry_run",
        "posts_per_day",
        "posting_hours_start",
        "posting_hours_start",
    ]


async def test_settings_limits_and_permissions(app: TestApp) -> None:
    await seed_chat(app.sessions, posts_per_day=50)
    assert "between 1 and 50" in await _settings_press(app, "ppd", 51)
    assert "between 1 and 50" in await _settings_press(app, "ppd", 0)
    assert "out of date" in await _settings_press(app, "dry", 2)
    assert "Only admins" in await _settings_press(app, "ppd", 49, who=MEMBER)
    assert "out of date" in await _settings_press(app, "colour", 1)
    [chat] = await fetch_all(app.sessions, "SELECT posts_per_day FROM chat_settings")
    assert chat.posts_per_day == 50
    assert "Only admins" in await say(app, "/settings", who=MEMBER)


async def test_a_retired_toggle_button_changes_nothing(app: TestApp) -> None:
    """Messages from before buttons carried values ("s:dry:0" meant toggle) are refused."""
    await app.feed(callback_update("s:dry:0", text_message(TEAM_CHAT, 900, "⚙️"), ADMIN))
    assert app.telegram.of(AnswerCallbackQuery)[-1].text == "⚠️ This button is no longer valid."
    assert await _changes(app) == []


async def test_settings_timezone(app: TestApp) -> None:
    assert "Timezone set to Europe/Berlin" in await say(
        app, "/settings tz Europe/Berlin", who=ADMIN
    )
    assert "Unknown timezone" in await say(app, "/settings tz Mars/Base", who=ADMIN)
    assert "Usage: /settings" in await say(app, "/settings volume 11", who=ADMIN)
    [chat] = await fetch_all(app.sessions, "SELECT timezone FROM chat_settings")
    assert chat.timezone == "Europe/Berlin"


async def test_commands_are_registered_with_telegram(app: TestApp) -> None:
    await register_commands(app.bot)
    [call] = app.telegram.of(SetMyCommands)
    assert [c.command for c in call.commands][:3] == ["start", "help", "status"]


@pytest.mark.parametrize("command", ["/pause", "/settings"])
async def test_admin_lookup_failure_falls_back_to_configured_admins(
    app: TestApp, command: str
) -> None:
    from aiogram.exceptions import TelegramNetworkError
    from aiogram.methods import GetChatAdministrators

    app.telegram.fail_next(
        GetChatAdministrators,
        TelegramNetworkError(method=GetChatAdministrators(chat_id=TEAM_CHAT), message="down"),
    )
    assert "Only admins" in await say(app, command, who=CHAT_ADMIN)


def _undecodable() -> Exception:
    try:
        ChatMemberOwner.model_validate({"status": "creator"})
    except ValidationError as error:
        return error
    raise AssertionError("validated")


@pytest.mark.parametrize(
    "failure",
    [
        lambda: ClientDecodeError("Failed to deserialize object", ValueError("x"), {}),
        _undecodable,
    ],
    ids=["client_decode_error", "validation_error"],
)
async def test_an_undecodable_admin_list_still_gets_an_answer(app: TestApp, failure: Any) -> None:
    """An older local Bot API server answers getChatAdministrators with a body aiogram refuses."""
    app.telegram.fail_next(GetChatAdministrators, failure())
    assert "Only admins" in await say(app, "/pause", who=CHAT_ADMIN)
    app.telegram.fail_next(GetChatAdministrators, failure())
    assert "Paused" in await say(app, "/pause", who=ADMIN)  # configured admins still count


async def test_a_dead_database_gets_a_clear_reply(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db.errors import DatabaseUnavailableError

    async def unreachable(*args: object, **kwargs: object) -> None:
        raise DatabaseUnavailableError("team.status")

    monkeypatch.setattr(app.services.team, "status", unreachable)
    assert "database can't be reached" in await say(app, "/status")


def _cut_next_commit(proxy: PgProxy) -> None:
    proxy.cut_after_reply_to(lambda data: b"COMMIT" in data)


async def test_lost_commit_reply_of_pause_still_says_paused(proxied_team: ProxiedTeam) -> None:
    team, proxy, sessions = proxied_team
    ada = ADA.identity
    _cut_next_commit(proxy)
    assert await team.set_paused(TEAM_CHAT, ada, True) is True  # "Paused", not "Already paused"
    assert proxy.cuts == 1
    assert await team.set_paused(TEAM_CHAT, ada, True) is False  # a real second /pause
    logged = await fetch_all(
        sessions, "SELECT context FROM user_interactions WHERE name = 'settings.change'"
    )
    assert [row.context for row in logged] == [{"field": "is_paused", "old": False, "new": True}]


@pytest.mark.parametrize(
    ("field", "value", "column", "expected"),
    [
        ("dry", 1, "dry_run", True),
        ("ppd", 4, "posts_per_day", 4),
        ("tz", "Asia/Tokyo", "timezone", "Asia/Tokyo"),
    ],
)
async def test_lost_commit_reply_of_a_setting_changes_and_logs_once(
    proxied_team: ProxiedTeam, field: str, value: Any, column: str, expected: Any
) -> None:
    team, proxy, sessions = proxied_team
    _cut_next_commit(proxy)
    chat, changed = await team.change_setting(TEAM_CHAT, ADA.identity, field, value)
    assert proxy.cuts == 1
    assert changed is True and getattr(chat, column) == expected
    [row] = await fetch_all(sessions, f"SELECT {column} AS value FROM chat_settings")
    assert row.value == expected
    logged = await fetch_all(
        sessions, "SELECT context FROM user_interactions WHERE name = 'settings.change'"
    )
    assert [r.context["new"] for r in logged] == [expected]


async def test_lost_commit_reply_of_touch_logs_once(proxied_team: ProxiedTeam) -> None:
    team, proxy, sessions = proxied_team
    _cut_next_commit(proxy)
    await team.touch(ALICE.identity, Interaction(InteractionKind.COMMAND, "status", TEAM_CHAT))
    assert proxy.cuts == 1
    logged = await fetch_all(sessions, "SELECT name FROM user_interactions")
    assert [row.name for row in logged] == ["status"]
