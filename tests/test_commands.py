"""Team commands through the dispatcher, against the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage, SetMyCommands
from sqlalchemy import text

from bot.handlers.commands import register_commands
from bot.handlers.settings import SettingsCallback
from tests.support import (
    OTHER_CHAT,
    TEAM_CHAT,
    TestApp,
    fetch_all,
    seed_chat,
    seed_media,
    seed_queue_item,
)
from tests.telegram_fake import (
    callback_update,
    command_update,
    queue_message,
    text_message,
    user,
)

ADMIN = user(1, "Ada", username="ada")  # in ADMIN_USER_IDS
MEMBER = user(7, "Alice", username="alice")
CHAT_ADMIN = user(9, "Carol", username="carol")


async def say(
    app: TestApp, text_: str, who=MEMBER, chat_id: int = TEAM_CHAT, chat_type: str = "supergroup"
) -> str:
    before = len(app.telegram.of(SendMessage))
    await app.feed(command_update(text_, chat_id, who, chat_type))
    await app.services.tasks.drain(5)
    replies = app.telegram.of(SendMessage)[before:]
    assert len(replies) == 1, [r.text for r in replies]
    return replies[0].text


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
    async with app.sessions() as session, session.begin():
        for position, media_id in enumerate(ids):
            await session.execute(
                text(
                    "INSERT INTO posting_history (media_item_id, chat_id, status, success,"
                    " acted_by_name, acted_at) VALUES (:m, :c, 'posted', true, 'Bob', :t)"
                ),
                {
                    "m": media_id,
                    "c": TEAM_CHAT,
                    "t": datetime.now(UTC) - timedelta(hours=position + 2),
                },
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
    assert "about 1 days at 3 a day" in reply


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


async def test_stats(app: TestApp) -> None:
    await _history_rows(app, 1)
    assert "No presses recorded yet" in await say(app, "/stats")  # rows without a person
    [media_id] = await seed_media(app.sessions, prefix="s")
    queue_id = await seed_queue_item(app.sessions, media_id)
    from bot.keyboards import QueueAction, QueueCallback

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


async def _settings_press(app: TestApp, field: str, step: int = 0, who=ADMIN) -> str | None:
    data = SettingsCallback(field=field, step=step).pack()
    message = text_message(TEAM_CHAT, 900, "⚙️ Settings")
    await app.feed(callback_update(data, message, who))
    return app.telegram.of(AnswerCallbackQuery)[-1].text


async def test_settings_round_trip(app: TestApp) -> None:
    reply = await say(app, "/settings", who=ADMIN)
    assert "Posts per day: 3" in reply
    keyboard = app.telegram.of(SendMessage)[-1].reply_markup
    assert [b.text for b in keyboard.inline_keyboard[1]] == ["➖", "3 a day", "➕"]

    assert await _settings_press(app, "ppd", 1) == "Saved"
    edit = app.telegram.of(EditMessageText)[-1]
    assert "Posts per day: 4" in edit.text
    assert [b.text for b in edit.reply_markup.inline_keyboard[1]] == ["➖", "4 a day", "➕"]
    assert await _settings_press(app, "dry") == "Saved"
    assert await _settings_press(app, "start", -1) == "Saved"
    assert await _settings_press(app, "end", 1) == "Saved"
    assert await _settings_press(app, "pause") == "Saved"

    [chat] = await fetch_all(
        app.sessions,
        "SELECT posts_per_day, dry_run, posting_hours_start,"
        " posting_hours_end, is_paused FROM chat_settings",
    )
    assert tuple(chat) == (4, True, 8, 22, True)
    changes = await fetch_all(
        app.sessions,
        "SELECT context FROM user_interactions WHERE name = 'settings.change' ORDER BY created_at",
    )
    assert next(c.context for c in changes) == {"field": "posts_per_day", "old": 3, "new": 4}
    assert len(changes) == 5


async def test_settings_limits_and_permissions(app: TestApp) -> None:
    await seed_chat(app.sessions, posts_per_day=50)
    assert "between 1 and 50" in await _settings_press(app, "ppd", 1)
    assert "Only admins" in await _settings_press(app, "ppd", -1, who=MEMBER)
    assert "out of date" in await _settings_press(app, "colour", 1)
    [chat] = await fetch_all(app.sessions, "SELECT posts_per_day FROM chat_settings")
    assert chat.posts_per_day == 50
    assert "Only admins" in await say(app, "/settings", who=MEMBER)


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


async def test_a_dead_database_gets_a_clear_reply(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db.errors import DatabaseUnavailableError

    async def unreachable(*args: object, **kwargs: object) -> None:
        raise DatabaseUnavailableError("team.status")

    monkeypatch.setattr(app.services.team, "status", unreachable)
    assert "database can't be reached" in await say(app, "/status")
