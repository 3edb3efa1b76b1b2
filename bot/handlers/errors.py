"""What a user sees when the database stays unreachable through the retry."""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent

from bot.domain import UnavailableError
from bot.presentation.texts import DATABASE_UNAVAILABLE
from bot.telegram import answer_quietly

logger = structlog.get_logger(__name__)


async def database_unavailable(event: ErrorEvent) -> None:
    logger.error("update.database_unavailable", error=str(event.exception))
    update = event.update
    if update.callback_query is not None:
        await answer_quietly(update.callback_query, DATABASE_UNAVAILABLE)
    elif update.message is not None:
        try:
            await update.message.answer(DATABASE_UNAVAILABLE)
        except Exception:
            logger.warning("update.reply_failed", exc_info=True)


def create_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(database_unavailable, ExceptionTypeFilter(UnavailableError))
    return router
