"""Included last: whatever no feature router took."""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.types import CallbackQuery

from bot.middlewares import ACTS_ON_QUEUE
from bot.presentation.texts import BUTTON_NO_LONGER_VALID
from bot.telegram import answer_quietly

logger = structlog.get_logger(__name__)


async def unknown_button(callback: CallbackQuery) -> None:
    """A malformed, forged or retired payload: a toast, a warning, nothing changed."""
    logger.warning("callback.unknown", data=(callback.data or "")[:64])
    await answer_quietly(callback, BUTTON_NO_LONGER_VALID)


def create_router() -> Router:
    router = Router(name=__name__)
    # Like a queue button: someone not allowed to act on the queue is told that instead.
    router.callback_query.register(unknown_button, flags={ACTS_ON_QUEUE: True})
    return router
