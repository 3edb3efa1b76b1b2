"""Dispatcher middlewares: per-update log context and who may press what where."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, Update

from bot.config import Settings
from bot.telegram import answer_quietly

logger = structlog.get_logger(__name__)
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class LogContextMiddleware(BaseMiddleware):
    """Binds update, chat and user ids to every log line of the update's handling."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        context: dict[str, Any] = {}
        if isinstance(event, Update):
            context["update_id"] = event.update_id
            chat = data.get("event_chat")
            user = data.get("event_from_user")
            if chat is not None:
                context["chat_id"] = chat.id
            if user is not None:
                context["user_id"] = user.id
        with structlog.contextvars.bound_contextvars(**context):
            return await handler(event, data)


def may_press(settings: Settings, user_id: int) -> bool:
    if not settings.allowed_user_ids:
        return True
    return user_id in settings.allowed_user_ids or user_id in settings.admin_user_ids


class TeamChatMiddleware(BaseMiddleware):
    """Queue buttons work only on the bot's own messages in the team chat, for allowed users."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, CallbackQuery)
        settings: Settings = data["settings"]
        message = event.message
        if not isinstance(message, Message):
            logger.warning("callback.inaccessible_message")
            await answer_quietly(event, "⚠️ This message is too old to act on.")
            return None
        if message.chat.id != settings.telegram_chat_id:
            logger.warning("callback.foreign_chat", chat_id=message.chat.id)
            await answer_quietly(event, "⚠️ This bot doesn't serve this chat.")
            return None
        if not may_press(settings, event.from_user.id):
            logger.warning("callback.not_allowed", user_id=event.from_user.id)
            await answer_quietly(event, "⛔ You're not allowed to act on the queue.")
            return None
        return await handler(event, data)
