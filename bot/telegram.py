"""Bot API calls whose harmless failures are not errors."""

from __future__ import annotations

from typing import Any

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, User

from bot.domain import TelegramIdentity

logger = structlog.get_logger(__name__)

_HARMLESS = ("message is not modified", "query is too old", "query id is invalid")


def _harmless(error: TelegramBadRequest) -> bool:
    return any(phrase in error.message.lower() for phrase in _HARMLESS)


async def answer_quietly(
    callback: CallbackQuery, text: str | None = None, *, alert: bool = False
) -> None:
    """Answer a callback query, best effort: the caption edit after it must still happen.

    A query that is too old is not an error; any other failure (after the request
    middleware's retries) is logged.
    """
    try:
        await callback.answer(text, show_alert=alert)
    except TelegramBadRequest as error:
        if _harmless(error):
            logger.debug("telegram.answer_ignored", reason=error.message)
        else:
            logger.warning("telegram.answer_failed", reason=error.message)
    except TelegramAPIError as error:
        logger.warning("telegram.answer_failed", reason=str(error))


async def edit_quietly(
    message: Message, html: str, reply_markup: InlineKeyboardMarkup | None
) -> bool:
    """Replace the caption (or text) and keyboard of a message in hand; see `edit_by_id_quietly`."""
    assert message.bot is not None  # a message from an update is bound to its bot
    return await edit_by_id_quietly(
        message.bot,
        message.chat.id,
        message.message_id,
        html,
        reply_markup,
        is_text=not (message.photo or message.video or message.animation or message.document),
    )


async def edit_by_id_quietly(
    bot: Bot,
    chat_id: int,
    message_id: int,
    html: str,
    reply_markup: InlineKeyboardMarkup | None,
    *,
    is_text: bool = False,
) -> bool:
    """Replace a message's caption (or text) and keyboard; False when Telegram refused.

    Unless `is_text`, the caption first: a message Telegram says has no caption (a
    text) gets its text edited. A failed edit is logged, not raised: the state is
    already recorded and the message can be repaired by the next edit of it.
    """
    target: dict[str, Any] = {
        "chat_id": chat_id,
        "message_id": message_id,
        "reply_markup": reply_markup,
    }
    try:
        if not is_text:
            try:
                await bot.edit_message_caption(caption=html, **target)
                return True
            except TelegramBadRequest as error:
                if "no caption" not in error.message.lower():
                    raise
        await bot.edit_message_text(text=html, **target)
    except TelegramBadRequest as error:
        if _harmless(error):
            return True
        logger.warning("telegram.edit_failed", reason=error.message)
        return False
    except TelegramAPIError as error:
        logger.warning("telegram.edit_failed", reason=str(error))
        return False
    return True


def identity_of(user: User) -> TelegramIdentity:
    """Who pressed or typed, as the service layer sees them."""
    return TelegramIdentity(user.id, user.username, user.first_name, user.last_name)


def writes_as_the_chat(message: Message) -> bool:
    """An anonymous admin: the message is sent as the chat itself (via GroupAnonymousBot).

    Only a chat's administrators can write as the chat, so this is an admin,
    though Telegram does not say which one.
    """
    return message.sender_chat is not None and message.sender_chat.id == message.chat.id


def actor_of(event: Message | CallbackQuery) -> TelegramIdentity | None:
    """Who acts: the presser, the sender, or an anonymous admin; None for no one we can name."""
    if isinstance(event, Message) and writes_as_the_chat(event):
        return TelegramIdentity(event.chat.id, anonymous_admin=True)
    if event.from_user is None:
        return None
    return identity_of(event.from_user)


def who(actor: TelegramIdentity) -> dict[str, object]:
    """An actor for a log line: their user id, or that an anonymous admin acted."""
    if actor.anonymous_admin:
        return {"actor": actor.display_name}
    return {"user_id": actor.telegram_user_id}
