"""Who may do what (docs/architecture.md §8): anonymous admins are admins, chat admins may press."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aiogram.methods import AnswerCallbackQuery, GetChatAdministrators, SendMessage, SendPhoto
from aiogram.types import Chat, ChatMemberUpdated, Update

from bot.presentation.keyboards import (
    InFlightAction,
    InFlightCallback,
    QueueAction,
    QueueCallback,
    queue_keyboard,
)
from bot.presentation.texts import FOREIGN_CHAT_BUTTON, INFLIGHT_DROPPED
from tests.helpers.fake_bot_api import ADMINISTRATOR_RIGHTS, BOT_USER, RESTRICTIONS_LIFTED
from tests.helpers.fake_telegram_session import (
    GROUP_ANONYMOUS_BOT,
    anonymous_admin_update,
    callback_update,
    command_update,
    queue_message,
    text_message,
)
from tests.helpers.support import (
    ALICE,
    BOB,
    CAROL,
    TEAM_CHAT,
    Person,
    TestApp,
    fetch_all,
    seed_chat,
    seed_media,
    seed_queue_item,
)

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
LINKED_CHANNEL = -1007000


def _only(app: TestApp, **settings: Any) -> None:
    app.dispatcher["settings"] = app.settings.model_copy(update=settings)


async def _replies(app: TestApp, before: int) -> list[str]:
    await app.services.tasks.drain(5)
    return [str(call.text) for call in app.telegram.of(SendMessage)[before:]]


async def test_an_anonymous_admin_pauses_and_is_logged_as_one_not_as_a_user(
    app: TestApp,
) -> None:
    await app.feed(anonymous_admin_update("/pause", TEAM_CHAT))
    assert any("Paused" in reply for reply in await _replies(app, 0))
    [chat] = await fetch_all(app.sessions, "SELECT is_paused, paused_by_user_id FROM chat_settings")
    assert chat.is_paused and chat.paused_by_user_id is None
    # Telegram does not say which admin: no users row, not even GroupAnonymousBot's.
    assert await fetch_all(app.sessions, "SELECT telegram_user_id FROM users") == []
    logged = await fetch_all(
        app.sessions,
        "SELECT name, user_id, context->>'actor' AS actor FROM user_interactions ORDER BY name",
    )
    assert [tuple(row) for row in logged] == [
        ("pause", None, "anonymous admin"),
        ("settings.change", None, "anonymous admin"),
    ]
    # Writing as the chat is proof enough: Telegram's admin list is not asked.
    assert app.telegram.of(GetChatAdministrators) == []
    before = len(app.telegram.of(SendMessage))
    await app.feed(command_update("/status", TEAM_CHAT, ALICE.user))
    [status] = await _replies(app, before)
    assert "Paused</b> by anonymous admin" in status


async def test_an_anonymous_admin_may_use_next_with_allowed_user_ids(app: TestApp) -> None:
    _only(app, allowed_user_ids=frozenset({ALICE.id}))
    await seed_media(app.sessions)
    (app.settings.media_dir / "cat").mkdir(parents=True)
    (app.settings.media_dir / "cat" / "item0.jpg").write_bytes(JPEG)
    await app.feed(anonymous_admin_update("/next", TEAM_CHAT))
    [sent] = app.telegram.of(SendPhoto)
    assert int(sent.chat_id) == TEAM_CHAT
    assert not any("not allowed" in reply for reply in await _replies(app, 0))
    assert await fetch_all(app.sessions, "SELECT 1 FROM users") == []


async def test_a_channel_writing_in_the_group_is_not_an_admin(app: TestApp) -> None:
    """Only `sender_chat` equal to the chat itself is an anonymous admin."""
    await app.feed(anonymous_admin_update("/pause", TEAM_CHAT, sender_chat_id=LINKED_CHANNEL))
    assert any("Only admins" in reply for reply in await _replies(app, 0))
    assert await fetch_all(app.sessions, "SELECT 1 FROM chat_settings WHERE is_paused") == []


async def test_group_anonymous_bot_without_sender_chat_is_nobody_special(app: TestApp) -> None:
    await app.feed(command_update("/pause", TEAM_CHAT, GROUP_ANONYMOUS_BOT))
    assert any("Only admins" in reply for reply in await _replies(app, 0))


async def _press(app: TestApp, presser: Person) -> str | None:
    [media_id] = await seed_media(app.sessions, prefix=f"p{presser.id}-")
    queue_id = await seed_queue_item(app.sessions, media_id, message_id=500 + presser.id)
    data = QueueCallback(action=QueueAction.SKIP, queue_id=queue_id).pack()
    message = queue_message(
        TEAM_CHAT, 500 + presser.id, "x\n\n📄 x.jpg", queue_keyboard(queue_id, instagram=False)
    )
    before = len(app.telegram.of(AnswerCallbackQuery))
    await app.feed(callback_update(data, message, presser.user))
    [toast] = app.telegram.of(AnswerCallbackQuery)[before:]
    return toast.text


async def test_a_chat_admin_may_press_and_use_next_with_allowed_user_ids(app: TestApp) -> None:
    _only(app, allowed_user_ids=frozenset({ALICE.id}))
    app.telegram.admins[TEAM_CHAT] = [BOB.id, CAROL.id]  # Telegram admins; not configured

    assert await _press(app, CAROL) != "⛔ You're not allowed to act on the queue."
    skipped = await fetch_all(
        app.sessions,
        "SELECT u.telegram_user_id FROM posting_history h JOIN users u"
        " ON u.id = h.acted_by_user_id WHERE h.status = 'skipped'",
    )
    assert [row.telegram_user_id for row in skipped] == [CAROL.id]

    before = len(app.telegram.of(SendMessage))
    await app.feed(command_update("/next", TEAM_CHAT, BOB.user))
    assert not any("not allowed" in reply for reply in await _replies(app, before))


async def test_a_member_neither_allowed_nor_admin_is_still_refused(app: TestApp) -> None:
    _only(app, allowed_user_ids=frozenset({ALICE.id}))
    app.telegram.admins[TEAM_CHAT] = [BOB.id]
    assert await _press(app, CAROL) == "⛔ You're not allowed to act on the queue."
    assert await fetch_all(app.sessions, "SELECT 1 FROM posting_history") == []
    before = len(app.telegram.of(SendMessage))
    await app.feed(command_update("/next", TEAM_CHAT, CAROL.user))
    assert any("not allowed" in reply for reply in await _replies(app, before))


def _membership(chat_id: int, old: dict[str, Any], new: dict[str, Any]) -> Update:
    """The bot's `my_chat_member` update, as Telegram sends it."""
    return Update.model_validate(
        {
            "update_id": 9000,
            "my_chat_member": ChatMemberUpdated.model_validate(
                {
                    "chat": Chat(id=chat_id, type="supergroup", title="team"),
                    "from": ALICE.bot_api(),
                    "date": datetime.now(UTC),
                    "old_chat_member": {"user": BOT_USER, **old},
                    "new_chat_member": {"user": BOT_USER, **new},
                }
            ),
        }
    )


ADMINISTRATOR = {"status": "administrator", **ADMINISTRATOR_RIGHTS}
MUTED = {"status": "restricted", **RESTRICTIONS_LIFTED, "can_send_messages": False}


async def test_rights_given_back_reset_the_chat_s_backoff(app: TestApp) -> None:
    backoff = app.services.scheduler.chat_backoff
    for _ in range(5):
        backoff.failed(TEAM_CHAT, "not enough rights to send photos")
    assert backoff.waiting(TEAM_CHAT)

    await app.feed(_membership(TEAM_CHAT, ADMINISTRATOR, MUTED))
    assert backoff.waiting(TEAM_CHAT)  # taking rights away resets nothing
    await app.feed(_membership(TEAM_CHAT, MUTED, ADMINISTRATOR))
    assert not backoff.waiting(TEAM_CHAT)


async def test_a_chat_not_served_changes_no_backoff(app: TestApp) -> None:
    backoff = app.services.scheduler.chat_backoff
    backoff.failed(LINKED_CHANNEL, "kicked")
    await app.feed(_membership(LINKED_CHANNEL, {"status": "left"}, ADMINISTRATOR))
    assert backoff.waiting(LINKED_CHANNEL)


async def test_rights_given_back_in_the_supergroup_a_group_became_reset_its_backoff(
    app: TestApp,
) -> None:
    supergroup = -1009990001
    await seed_chat(app.sessions)
    await app.services.chat_directory.follow(TEAM_CHAT, supergroup, app.bot)
    backoff = app.services.scheduler.chat_backoff
    backoff.failed(supergroup, "not enough rights to send photos")
    await app.feed(_membership(supergroup, MUTED, ADMINISTRATOR))
    assert not backoff.waiting(supergroup)


async def _item_sent_before_the_upgrade(app: TestApp, supergroup: int) -> UUID:
    """One item sent to the group as message 500, then Telegram upgraded it to `supergroup`."""
    await seed_chat(app.sessions)
    [media_id] = await seed_media(app.sessions)
    # Sent to the group before Telegram upgraded it: the message stays the old chat's.
    queue_id = await seed_queue_item(app.sessions, media_id, message_id=500)
    await app.services.chat_directory.follow(TEAM_CHAT, supergroup, app.bot)
    return queue_id


async def _press_in_the_old_group(app: TestApp, queue_id: UUID, action: QueueAction) -> str:
    """Alice presses `action` on message 500 in the old group; returns the button's data."""
    data = QueueCallback(action=action, queue_id=queue_id).pack()
    message = queue_message(
        TEAM_CHAT, 500, "x\n\n📄 x.jpg", queue_keyboard(queue_id, instagram=False)
    )
    await app.feed(callback_update(data, message, ALICE.user))
    return data


async def test_a_press_in_the_old_group_s_history_is_recorded_after_the_upgrade(
    app: TestApp,
) -> None:
    supergroup = -1009990001
    queue_id = await _item_sent_before_the_upgrade(app, supergroup)
    await _press_in_the_old_group(app, queue_id, QueueAction.POSTED)
    [toast] = app.telegram.of(AnswerCallbackQuery)
    assert "Posted" in str(toast.text)
    recorded = await fetch_all(app.sessions, "SELECT chat_id, status FROM posting_history")
    assert [tuple(row) for row in recorded] == [(supergroup, "posted")]


async def test_an_old_group_s_press_passes_the_gate_once_the_configuration_names_the_supergroup(
    app: TestApp,
) -> None:
    supergroup = -1009990001
    queue_id = await _item_sent_before_the_upgrade(app, supergroup)
    # The operator followed the hint: TELEGRAM_CHAT_ID names the supergroup only.
    _only(app, telegram_chat_id=(supergroup,))
    app.services.chat_directory.configured = (supergroup,)
    data = await _press_in_the_old_group(app, queue_id, QueueAction.SKIP)
    recorded = await fetch_all(app.sessions, "SELECT chat_id, status FROM posting_history")
    assert [tuple(row) for row in recorded] == [(supergroup, "skipped")]
    # A chat that never led here is still a stranger's.
    elsewhere = queue_message(LINKED_CHANNEL, 900, "x", queue_keyboard(queue_id, instagram=False))
    await app.feed(callback_update(data, elsewhere, ALICE.user))
    assert app.telegram.of(AnswerCallbackQuery)[-1].text == FOREIGN_CHAT_BUTTON


async def test_an_admin_drops_an_item_from_a_queue_listed_before_the_upgrade(
    app: TestApp,
) -> None:
    supergroup = -1009990001
    queue_id = await _item_sent_before_the_upgrade(app, supergroup)
    app.telegram.admins[supergroup] = [ALICE.id]
    drop = InFlightCallback(action=InFlightAction.DROP, queue_id=queue_id, message_id=500)
    listing = text_message(TEAM_CHAT, 600, "In flight")
    await app.feed(callback_update(drop.pack(), listing, ALICE.user))
    assert app.telegram.of(AnswerCallbackQuery)[-1].text == INFLIGHT_DROPPED
    assert await fetch_all(app.sessions, "SELECT 1 FROM posting_queue") == []
