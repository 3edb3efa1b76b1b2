"""The team-chat gate: one mechanism for commands and buttons, per chat, with several chats."""

from __future__ import annotations

from aiogram.methods import AnswerCallbackQuery, GetChatAdministrators, SendMessage, SendPhoto

from bot.presentation.keyboards import SettingsCallback
from tests.helpers.fake_telegram_session import callback_update, command_update, text_message
from tests.helpers.support import (
    ADA,
    ALICE,
    OTHER_CHAT,
    TEAM_CHAT,
    TestApp,
    fetch_all,
    seed_chat,
    seed_media,
)

ADMIN = ADA.user  # in ADMIN_USER_IDS
MEMBER = ALICE.user
STRANGER_CHAT = -1005000


def _serve_two_chats(app: TestApp, **more: object) -> None:
    app.dispatcher["settings"] = app.settings.model_copy(
        update={"telegram_chat_id": (TEAM_CHAT, OTHER_CHAT), **more}
    )


async def _say(app: TestApp, text: str, chat_id: int, who=MEMBER) -> str:
    before = len(app.telegram.of(SendMessage))
    await app.feed(command_update(text, chat_id, who))
    await app.services.tasks.drain(5)
    replies = app.telegram.of(SendMessage)[before:]
    assert len(replies) == 1, [r.text for r in replies]
    return str(replies[0].text)


def _toasts(app: TestApp) -> list[str | None]:
    return [call.text for call in app.telegram.of(AnswerCallbackQuery)]


async def test_commands_act_on_the_chat_they_are_typed_in(app: TestApp) -> None:
    _serve_two_chats(app)
    await seed_chat(app.sessions, OTHER_CHAT)
    assert "Paused" in await _say(app, "/pause", OTHER_CHAT, ADMIN)

    paused = await fetch_all(
        app.sessions, "SELECT telegram_chat_id FROM chat_settings WHERE is_paused"
    )
    assert [row.telegram_chat_id for row in paused] == [OTHER_CHAT]
    assert "Running" in await _say(app, "/status", TEAM_CHAT)
    assert "Paused" in await _say(app, "/status", OTHER_CHAT)
    logged = await fetch_all(
        app.sessions, "SELECT chat_id, name FROM user_interactions WHERE name <> 'settings.change'"
    )
    assert sorted(tuple(row) for row in logged) == [
        (OTHER_CHAT, "pause"),
        (OTHER_CHAT, "status"),
        (TEAM_CHAT, "status"),
    ]


async def test_next_sends_from_the_chat_s_own_library(app: TestApp) -> None:
    _serve_two_chats(app)
    await seed_chat(app.sessions, OTHER_CHAT)
    await seed_media(app.sessions, TEAM_CHAT, prefix="a")
    (app.settings.media_dir / "cat").mkdir(parents=True)
    (app.settings.media_dir / "cat" / "a0.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)

    assert "library is empty" in await _say(app, "/next", OTHER_CHAT)
    await app.feed(command_update("/next", TEAM_CHAT, MEMBER))
    [sent] = app.telegram.of(SendPhoto)
    assert int(sent.chat_id) == TEAM_CHAT and "a0.jpg" in sent.caption


async def test_a_chat_not_listed_is_refused_for_commands_and_buttons(app: TestApp) -> None:
    _serve_two_chats(app)
    assert "only work in my team's chat" in await _say(app, "/status", STRANGER_CHAT)
    message = text_message(STRANGER_CHAT, 10, "⚙️ Settings")
    data = SettingsCallback(field="noop").pack()
    await app.feed(callback_update(data, message, ADMIN))
    assert _toasts(app) == ["⚠️ This bot doesn't serve this chat."]
    assert await fetch_all(app.sessions, "SELECT 1 FROM user_interactions") == []


async def test_queue_actions_need_an_allowed_user_settings_an_admin(app: TestApp) -> None:
    _serve_two_chats(app, allowed_user_ids=frozenset({99}))
    assert "not allowed" in await _say(app, "/next", TEAM_CHAT)
    # A settings button is the admin check's: the member check does not apply to it.
    message = text_message(OTHER_CHAT, 10, "⚙️ Settings")
    await app.feed(callback_update(SettingsCallback(field="noop").pack(), message, MEMBER))
    assert _toasts(app) == [None]


async def test_admin_commands_elsewhere_get_the_gate_s_answer_and_no_admin_lookup(
    app: TestApp,
) -> None:
    """IsAdmin never asks Telegram about a chat the bot does not serve."""
    assert "only work in my team's chat" in await _say(app, "/pause", STRANGER_CHAT, ADMIN)
    before = len(app.telegram.of(SendMessage))
    await app.feed(command_update("/settings", MEMBER.id, MEMBER, "private"))
    [reply] = app.telegram.of(SendMessage)[before:]
    assert "private chat" in str(reply.text)
    message = text_message(STRANGER_CHAT, 10, "⚙️ Settings")
    await app.feed(callback_update(SettingsCallback(field="ppd", value=3).pack(), message, ADMIN))
    assert _toasts(app) == ["⚠️ This bot doesn't serve this chat."]
    assert app.telegram.of(GetChatAdministrators) == []
    assert await fetch_all(app.sessions, "SELECT 1 FROM chat_settings WHERE is_paused") == []


async def test_a_refused_admin_command_is_answered_and_logged(app: TestApp) -> None:
    assert "Only admins" in await _say(app, "/resume", TEAM_CHAT, MEMBER)
    logged = await fetch_all(app.sessions, "SELECT name FROM user_interactions")
    assert [row.name for row in logged] == ["resume"]


async def test_other_commands_cost_no_admin_lookup(app: TestApp) -> None:
    assert "Running" in await _say(app, "/status", TEAM_CHAT)
    await app.feed(command_update("just chatting", TEAM_CHAT, MEMBER))
    assert app.telegram.of(GetChatAdministrators) == []
