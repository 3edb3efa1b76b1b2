"""Dispatcher middlewares: log context, who may press what where, work that outlives shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import get_flag
from aiogram.types import CallbackQuery, InaccessibleMessage, Message, TelegramObject, Update

from bot.config import Settings
from bot.domain import ANONYMOUS_ADMIN, TelegramIdentity
from bot.presentation.texts import (
    FOREIGN_CHAT_BUTTON,
    FOREIGN_CHAT_REFUSED,
    MESSAGE_TOO_OLD,
    NOT_ALLOWED,
    PRIVATE_CHAT_REFUSED,
)
from bot.services.admins import AdminDirectory
from bot.services.chats import ChatDirectory
from bot.services.tasks import TaskTracker
from bot.services.team import TeamService
from bot.telegram import actor_of, answer_quietly, identity_of, who, writes_as_the_chat
from db.repositories import Interaction
from db.vocabulary import InteractionKind

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
            if event.message is not None and writes_as_the_chat(event.message):
                # from_user is GroupAnonymousBot, shared by every anonymous admin.
                context["actor"] = ANONYMOUS_ADMIN
            elif user is not None:
                context["user_id"] = user.id
        with structlog.contextvars.bound_contextvars(**context):
            return await handler(event, data)


# Handler flags the gate reads (`router.message.register(..., flags={PRIVATE_OK: True})`).
PRIVATE_OK = "private_ok"  # a command that also answers in a private chat
ACTS_ON_QUEUE = "acts_on_queue"  # a command or button only ALLOWED_USER_IDS and admins may use
# Read by RunToCompletionMiddleware: a handler whose effect must finish once it started.
RUNS_TO_COMPLETION = "runs_to_completion"
# Telegram's own service message about a chat this process serves or served before an
# upgrade: the handler checks the chats itself (the new id is not served yet).
CHAT_SERVICE = "chat_service"
# A button that still works on a message Telegram no longer shows (deleted, too old):
# the handler takes `button_message: Message | InaccessibleMessage` and answers by toast.
VANISHED_OK = "vanished_ok"


class ChatGateMiddleware(BaseMiddleware):
    """The one team-chat gate, for every router: runs once a handler matched.

    Commands and buttons work only in a chat listed in TELEGRAM_CHAT_ID (a few
    commands also in private); buttons only on the bot's own reachable messages;
    queue actions only for allowed users and admins (`AdminDirectory.may_act_on_queue`).
    Everything refused is answered and logged. Admin commands are `bot.filters.IsAdmin`'s.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        settings: Settings = data["settings"]
        if get_flag(data, CHAT_SERVICE):
            return await handler(event, data)
        if isinstance(event, CallbackQuery):
            return await self._button(handler, event, data, settings)
        if isinstance(event, Message):
            return await self._command(handler, event, data, settings)
        return await handler(event, data)

    async def _button(
        self, handler: Handler, event: CallbackQuery, data: dict[str, Any], settings: Settings
    ) -> Any:
        message = event.message
        vanished = isinstance(message, InaccessibleMessage) and get_flag(data, VANISHED_OK)
        if not (isinstance(message, Message) or vanished):
            logger.warning("callback.inaccessible_message")
            await answer_quietly(event, MESSAGE_TOO_OLD)
            return None
        assert message is not None
        if not _serves(data, message.chat.id):
            logger.warning("callback.foreign_chat", chat_id=message.chat.id)
            await answer_quietly(event, FOREIGN_CHAT_BUTTON)
            return None
        admins: AdminDirectory = data["admins"]
        presser = identity_of(event.from_user)
        if get_flag(data, ACTS_ON_QUEUE) and not await admins.may_act_on_queue(
            message.chat.id, presser, settings.allowed_user_ids
        ):
            logger.warning("callback.not_allowed", **who(presser))
            await answer_quietly(event, NOT_ALLOWED)
            return None
        # What the gate checked, handed on typed: handlers take `button_message: Message`.
        data["button_message"] = message
        return await handler(event, data)

    async def _command(
        self, handler: Handler, event: Message, data: dict[str, Any], settings: Settings
    ) -> Any:
        actor = actor_of(event)
        if actor is None:
            return None
        name = command_name(event)
        if event.chat.type == "private":
            if not get_flag(data, PRIVATE_OK):
                await event.answer(PRIVATE_CHAT_REFUSED)
                return None
        elif not _serves(data, event.chat.id):
            logger.warning("command.foreign_chat", chat_id=event.chat.id, command=name)
            await event.answer(FOREIGN_CHAT_REFUSED)
            return None
        admins: AdminDirectory = data["admins"]
        if get_flag(data, ACTS_ON_QUEUE) and not await admins.may_act_on_queue(
            event.chat.id, actor, settings.allowed_user_ids
        ):
            logger.warning("command.not_allowed", command=name, **who(actor))
            await event.answer(NOT_ALLOWED)
            return None
        return await handler(event, data)


def _serves(data: dict[str, Any], chat_id: int) -> bool:
    """A configured chat, the supergroup Telegram upgraded one to, or the group it was."""
    settings: Settings = data["settings"]
    directory: ChatDirectory = data["chat_directory"]
    return settings.serves(chat_id) or directory.leads_here(chat_id)


class RunToCompletionMiddleware(BaseMiddleware):
    """Runs a RUNS_TO_COMPLETION handler as tracked work (`TaskTracker.run_to_completion`).

    Shutdown cancels the handler, not its work: a press still commits and its
    caption is still edited, and shutdown drains it within its grace. Registered
    after the gate, so what the gate refuses is answered without the shield.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not get_flag(data, RUNS_TO_COMPLETION):
            return await handler(event, data)
        tasks: TaskTracker = data["tasks"]
        return await tasks.run_to_completion(_handle(handler, event, data))


async def _handle(handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
    return await handler(event, data)


def command_name(message: Message) -> str:
    head = (message.text or "").split(maxsplit=1)[0] if message.text else ""
    return head.lstrip("/").split("@", 1)[0].lower()


class InteractionLogMiddleware(BaseMiddleware):
    """Logs each command that passed the gate, in the background: never delays or fails it.

    Registered once, on the dispatcher after the gate, so it covers every router.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        actor = actor_of(event) if isinstance(event, Message) else None
        if isinstance(event, Message) and actor is not None:
            if get_flag(data, CHAT_SERVICE):
                return await handler(event, data)
            team: TeamService = data["team"]
            tasks: TaskTracker = data["tasks"]
            tasks.spawn(_touch_quietly(team, event, actor, command_name(event)))
        return await handler(event, data)


async def _touch_quietly(
    team: TeamService, message: Message, actor: TelegramIdentity, name: str
) -> None:
    try:
        await team.touch(
            actor,
            Interaction(
                InteractionKind.COMMAND,
                name,
                message.chat.id,
                context={"text": (message.text or "")[:200]},
                telegram_message_id=message.message_id,
            ),
        )
    except Exception:
        logger.exception("command.log_failed", command=name)
