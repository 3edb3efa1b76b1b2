"""The bot's own membership (`my_chat_member`): removed, re-added, restricted, given rights back.

A chat that refused the bot is backed off (`ChatBackoff`) for up to an hour; when
Telegram says the bot may post there again, the backoff is reset at once so the
chat's next due slot goes out on the next tick. A removal is logged once, here,
as Telegram reports it; `python -m bot check` reports a chat the bot is not in.
"""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.enums import ChatMemberStatus
from aiogram.types import ChatMemberRestricted, ChatMemberUpdated
from aiogram.types.chat_member_union import ChatMemberUnion

from bot.config import Settings
from bot.services.chats import ChatDirectory
from bot.services.scheduler import Scheduler

logger = structlog.get_logger(__name__)

GONE = {ChatMemberStatus.LEFT, ChatMemberStatus.KICKED}


def may_post(member: ChatMemberUnion) -> bool:
    """Whether the bot, as this member, can send the queue's messages to the chat."""
    if member.status in GONE:
        return False
    if isinstance(member, ChatMemberRestricted):
        return member.is_member and member.can_send_messages and member.can_send_photos
    return True


async def membership_changed(
    event: ChatMemberUpdated,
    settings: Settings,
    scheduler: Scheduler,
    chat_directory: ChatDirectory,
) -> None:
    chat_id = event.chat.id
    old, new = event.old_chat_member, event.new_chat_member
    by = event.from_user.id
    # A configured chat, or the supergroup Telegram upgraded one to.
    if not (settings.serves(chat_id) or chat_directory.serves(chat_id)):
        logger.info("chat.membership_elsewhere", chat_id=chat_id, status=new.status, by=by)
        return
    if new.status in GONE:
        if old.status not in GONE:
            logger.error("chat.bot_removed", chat_id=chat_id, status=new.status, by=by)
        return
    if may_post(new):
        if not may_post(old):
            scheduler.chat_backoff.reset(chat_id)
            logger.info("chat.bot_readmitted", chat_id=chat_id, status=new.status, by=by)
        return
    logger.warning("chat.bot_restricted", chat_id=chat_id, status=new.status, by=by)


def create_router() -> Router:
    router = Router(name=__name__)
    router.my_chat_member.register(membership_changed)
    return router
