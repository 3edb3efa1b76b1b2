"""Dispatcher middlewares: per-update log context and who may press what where."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, Update

from bot.config import Settings
from bot.services.tasks import TaskTracker
from bot.services.team import TeamService
from bot.telegram import answer_quietly, identity_of

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


def command_name(message: Message) -> str:
    head = (message.text or "").split(maxsplit=1)[0] if message.text else ""
    return head.lstrip("/").split("@", 1)[0].lower()


class CommandScopeMiddleware(BaseMiddleware):
    """Runs once a command handler matched: the chat must be served; the user is logged."""

    def __init__(self, private_ok: set[str]) -> None:
        self._private_ok = frozenset(private_ok)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Message)
        settings: Settings = data["settings"]
        name = command_name(event)
        if event.from_user is None:
            return None
        if event.chat.type == "private":
            if name not in self._private_ok:
                allowed = " and ".join(
                    f"/{command}" for command in sorted(self._private_ok, reverse=True)
                )
                await event.answer(
                    f"In a private chat I only answer {allowed}. "
                    "The other commands work in the team chat."
                )
                return None
        elif event.chat.id != settings.telegram_chat_id:
            logger.warning("command.foreign_chat", chat_id=event.chat.id, command=name)
            await event.answer("Sorry — I only work in my team's chat.")
            return None
        team: TeamService = data["team"]
        tasks: TaskTracker = data["tasks"]
        # Never delays or fails the command: its own short transaction, in the background.
        tasks.spawn(_touch_quietly(team, event, name))
        return await handler(event, data)


async def _touch_quietly(team: TeamService, message: Message, name: str) -> None:
    assert message.from_user is not None
    try:
        await team.touch(
            message.chat.id,
            identity_of(message.from_user),
            "command",
            name,
            context={"text": (message.text or "")[:200]},
            message_id=message.message_id,
        )
    except Exception:
        logger.exception("command.log_failed", command=name)
