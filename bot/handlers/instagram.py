"""/live: the Stories live on the chat's Instagram account now, matched to the queue."""

from __future__ import annotations

from html import escape

import structlog
from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.handlers.commands import ago, file_label, fit_message, local
from bot.middlewares import InteractionLogMiddleware
from bot.services.clock import Clock
from bot.services.instagram import InstagramError
from bot.services.instagram_accounts import HOW_TO_CONFIGURE, InstagramAccounts, live_view

logger = structlog.get_logger(__name__)


async def live(
    message: Message,
    instagram_accounts: InstagramAccounts,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> None:
    client = instagram_accounts.client_for(message.chat.id)
    if client is None:
        await message.answer(f"📡 {escape(HOW_TO_CONFIGURE)}")
        return
    try:
        view = await live_view(sessions, client, message.chat.id)
    except InstagramError as error:
        logger.warning("live.failed", failure=error.failure.value, detail=error.detail)
        await message.answer(f"⚠️ Couldn't read the live Stories: {escape(error.cause)}.")
        return
    if not view.entries:
        await message.answer("📭 No Stories are live on Instagram right now.")
        return
    now = clock()
    header = f"📡 <b>{len(view.entries)} live on Instagram</b> (Stories last 24 h)"
    lines = []
    for entry in view.entries:
        posted = entry.story.posted_at
        when = f"{local(posted, view.timezone)} ({ago(posted, now)})" if posted else "time unknown"
        if entry.ours is None:
            what = "not from this queue"
        else:
            who = escape(entry.ours.acted_by_name or "someone")
            what = f"{file_label(entry.ours.file_name)}, 🤖 by {who}"
        lines.append(f"• {when} — {what}")
    # Up to 100 Stories a day would outgrow one message, which Telegram then refuses.
    await message.answer(fit_message(header, lines))


def create_router() -> Router:
    router = Router(name=__name__)
    # The chat gate (bot.middlewares) guards every router; this logs what passed it.
    router.message.middleware(InteractionLogMiddleware())
    router.message.register(live, Command("live"))
    return router
