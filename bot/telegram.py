"""Bot API calls whose harmless failures are not errors."""

from __future__ import annotations

import structlog
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, User

from db.repositories import TelegramIdentity

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
    """Replace the caption (or text) and keyboard; False when Telegram refused.

    A failed edit is logged, not raised: the press is already recorded and the
    message can be repaired by the next press on it.
    """
    try:
        if message.photo or message.video or message.animation or message.document:
            await message.edit_caption(caption=html, reply_markup=reply_markup)
        else:
            await message.edit_text(text=html, reply_markup=reply_markup)
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
