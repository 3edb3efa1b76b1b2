"""/live: the Stories live on the chat's Instagram account now, matched to the queue."""

from __future__ import annotations

from html import escape

import structlog
from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.clock import Clock
from bot.services.instagram import InstagramError
from bot.services.instagram_accounts import HOW_TO_CONFIGURE, InstagramAccounts, live_view
from bot.texts import ago, local

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
    lines = [f"📡 <b>{len(view.entries)} live on Instagram</b> (Stories last 24 h)"]
    for entry in view.entries:
        posted = entry.story.posted_at
        when = f"{local(posted, view.timezone)} ({ago(posted, now)})" if posted else "time unknown"
        if entry.ours is None:
            what = "not from this queue"
        else:
            who = escape(entry.ours.acted_by_name or "someone")
            what = f"<code>{escape(entry.ours.file_name)}</code>, 🤖 by {who}"
        lines.append(f"• {when} — {what}")
    await message.answer("\n".join(lines))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(live, Command("live"))
    return router
