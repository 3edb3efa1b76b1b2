"""Telegram's service messages about the team chat itself: a group upgraded to a supergroup."""

from __future__ import annotations

import structlog
from aiogram import Bot, F, Router
from aiogram.types import Message

from bot.middlewares import CHAT_SERVICE, RUNS_TO_COMPLETION
from bot.services.chats import ChatDirectory

logger = structlog.get_logger(__name__)


async def follow_upgrade(message: Message, chat_directory: ChatDirectory, bot: Bot) -> None:
    """In the old group `migrate_to_chat_id`, in the new supergroup `migrate_from_chat_id`."""
    if message.migrate_to_chat_id is not None:
        old, new = message.chat.id, message.migrate_to_chat_id
    else:
        assert message.migrate_from_chat_id is not None
        old, new = message.migrate_from_chat_id, message.chat.id
    if not chat_directory.known([old]):
        logger.info("chat.foreign_migration", old_chat_id=old, new_chat_id=new)
        return
    await chat_directory.follow(old, new, bot)


def create_router() -> Router:
    router = Router(name=__name__)
    # Its own gate (the new id is not served yet); once begun, the move and the notice finish.
    flags = {CHAT_SERVICE: True, RUNS_TO_COMPLETION: True}
    router.message.register(follow_upgrade, F.migrate_to_chat_id, flags=flags)
    router.message.register(follow_upgrade, F.migrate_from_chat_id, flags=flags)
    return router
