"""/live: the Stories live on the chat's Instagram account now, matched to the queue."""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.presentation.texts import LIVE_NOT_CONFIGURED, NO_LIVE_STORIES, live_failed, live_text
from bot.services.accounts.clients import InstagramAccounts
from bot.services.accounts.live import live_view
from bot.services.clock import Clock
from bot.services.instagram import InstagramError

logger = structlog.get_logger(__name__)


async def live(
    message: Message,
    instagram_accounts: InstagramAccounts,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> None:
    client = instagram_accounts.client_for(message.chat.id)
    if client is None:
        await message.answer(LIVE_NOT_CONFIGURED)
        return
    try:
        view = await live_view(sessions, client, message.chat.id)
    except InstagramError as error:
        logger.warning("live.failed", failure=error.failure.value, detail=error.detail)
        await message.answer(live_failed(error.cause))
        return
    if not view.entries:
        await message.answer(NO_LIVE_STORIES)
        return
    await message.answer(live_text(view, clock()))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(live, Command("live"))
    return router
