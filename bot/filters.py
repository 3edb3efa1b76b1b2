"""Access filters, declared where routes are declared (`router.message.filter(IsAdmin())`)."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bot.config import Settings
from bot.services.admins import AdminDirectory
from bot.services.chats import ChatDirectory
from bot.telegram import actor_of


class IsAdmin(Filter):
    """An admin of a chat this bot serves; hands the handler `admin`, their identity.

    An anonymous admin (writing as the chat) is one; their identity says so
    (`TelegramIdentity.anonymous_admin`), never naming a shared user.

    A chat the bot does not serve is never asked about (no getChatAdministrators
    for a stranger's chat): the update falls through to a refusal, and the chat
    gate answers it.
    """

    async def __call__(
        self,
        event: Message | CallbackQuery,
        admins: AdminDirectory,
        settings: Settings,
        chat_directory: ChatDirectory,
    ) -> bool | dict[str, Any]:
        actor = actor_of(event)
        if isinstance(event, CallbackQuery):
            if event.message is None:
                return False
            chat_id = event.message.chat.id
        else:
            chat_id = event.chat.id
        # A button in the history of a group Telegram upgraded: the supergroup's admins.
        chat_id = chat_directory.resolve(chat_id)
        if actor is None or not (settings.serves(chat_id) or chat_directory.serves(chat_id)):
            return False
        if not await admins.is_admin(chat_id, actor):
            return False
        return {"admin": actor}
