"""A recording Bot API session and builders of real `Update` objects."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramBadRequest, TelegramMigrateToChat
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageCaption,
    EditMessageReplyMarkup,
    EditMessageText,
    GetChatAdministrators,
    GetMe,
    SendMessage,
    SendPhoto,
    SendVideo,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.types import (
    CallbackQuery,
    Chat,
    ChatMemberAdministrator,
    ChatMemberOwner,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    PhotoSize,
    Update,
    User,
    Video,
)

from tests.helpers.fake_bot_api import over_limit

Method = TypeVar("Method", bound=TelegramMethod[Any])

BOT_USER = User(id=42, is_bot=True, first_name="storyqueue", username="storyqueue_bot")
# What Telegram puts in `from` of every message an anonymous admin sends as the chat.
GROUP_ANONYMOUS_BOT = User(
    id=1087968824, is_bot=True, first_name="Group", username="GroupAnonymousBot"
)


class RecordingSession(BaseSession):
    """Answers every Bot API call locally and keeps the calls for assertions."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[TelegramMethod[Any]] = []
        self.failures: dict[type[TelegramMethod[Any]], list[Exception]] = {}
        self.admins: dict[int, list[int]] = {}
        self._message_ids = itertools.count(1000)
        self._file_ids = itertools.count(1)

    def fail_next(self, method: type[TelegramMethod[Any]], error: Exception) -> None:
        self.failures.setdefault(method, []).append(error)

    def of(self, method: type[Method]) -> list[Method]:
        """The calls of one Bot API method, in order."""
        return [call for call in self.calls if isinstance(call, method)]

    async def close(self) -> None:
        return None

    def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:  # pragma: no cover
        raise NotImplementedError

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        self.calls.append(method)
        queued = self.failures.get(type(method))
        if queued:
            raise queued.pop(0)
        texts = {name: getattr(method, name, None) for name in ("text", "caption")}
        parse_mode = getattr(method, "parse_mode", None)
        # A parse mode left to the bot's default is its HTML.
        texts["parse_mode"] = parse_mode if isinstance(parse_mode, str | None) else "HTML"
        refusal = over_limit(method.__api_method__, texts)
        if refusal is not None:
            # As Telegram does (bot.limits keeps the bot's texts from getting here).
            raise TelegramBadRequest(method=method, message=refusal)
        now = datetime.now(UTC)
        if isinstance(method, GetMe):
            return BOT_USER
        if isinstance(method, SendPhoto | SendVideo | SendMessage):
            chat = Chat(id=int(method.chat_id), type="supergroup", title="team")
            media: dict[str, Any] = {}
            if isinstance(method, SendPhoto):
                file_id = (
                    method.photo
                    if isinstance(method.photo, str)
                    else f"photo-{next(self._file_ids)}"
                )
                media["photo"] = [
                    PhotoSize(file_id=file_id, file_unique_id=file_id, width=1, height=1)
                ]
                media["caption"] = method.caption
            elif isinstance(method, SendVideo):
                file_id = (
                    method.video
                    if isinstance(method.video, str)
                    else f"video-{next(self._file_ids)}"
                )
                media["video"] = Video(
                    file_id=file_id, file_unique_id=file_id, width=1, height=1, duration=1
                )
                media["caption"] = method.caption
            else:
                media["text"] = method.text
            return Message(
                message_id=next(self._message_ids),
                date=now,
                chat=chat,
                from_user=BOT_USER,
                reply_markup=(
                    method.reply_markup
                    if isinstance(method.reply_markup, InlineKeyboardMarkup)
                    else None
                ),
                **media,
            )
        if isinstance(method, GetChatAdministrators):
            ids = self.admins.get(int(method.chat_id), [])
            members: list[Any] = []
            for position, user_id in enumerate(ids):
                user = User(id=user_id, is_bot=False, first_name=f"admin{user_id}")
                if position == 0:
                    members.append(ChatMemberOwner(user=user, is_anonymous=False))
                else:
                    members.append(
                        ChatMemberAdministrator(
                            user=user,
                            can_be_edited=False,
                            is_anonymous=False,
                            can_manage_chat=True,
                            can_delete_messages=True,
                            can_manage_video_chats=True,
                            can_restrict_members=True,
                            can_promote_members=False,
                            can_change_info=True,
                            can_invite_users=True,
                            can_post_stories=False,
                            can_edit_stories=False,
                            can_delete_stories=False,
                            can_send_welcome_messages=False,
                        )
                    )
            return members
        if isinstance(method, AnswerCallbackQuery | SetMyCommands | EditMessageReplyMarkup):
            return True
        if isinstance(method, EditMessageCaption | EditMessageText):
            return True
        return True


def not_modified() -> TelegramBadRequest:
    return TelegramBadRequest(
        method=EditMessageCaption(caption=""),
        message="Bad Request: message is not modified",
    )


def group_upgraded(method: TelegramMethod[Any], supergroup: int) -> TelegramMigrateToChat:
    """Telegram's refusal of `method` in a group it upgraded to `supergroup`."""
    return TelegramMigrateToChat(
        method=method,
        message="Bad Request: group chat was upgraded to a supergroup chat",
        migrate_to_chat_id=supergroup,
    )


_update_ids = itertools.count(1)


def user(
    user_id: int,
    first_name: str,
    last_name: str | None = None,
    username: str | None = None,
) -> User:
    """Anyone, as aiogram's `User`; the suite's own people are `tests.helpers.support.Person`s."""
    return User(
        id=user_id, is_bot=False, first_name=first_name, last_name=last_name, username=username
    )


def queue_message(
    chat_id: int,
    message_id: int,
    caption: str,
    keyboard: InlineKeyboardMarkup | None = None,
    entities: list[MessageEntity] | None = None,
) -> Message:
    return Message(
        message_id=message_id,
        date=datetime.now(UTC),
        chat=Chat(id=chat_id, type="supergroup", title="team"),
        from_user=BOT_USER,
        photo=[PhotoSize(file_id="photo-1", file_unique_id="u1", width=1, height=1)],
        caption=caption,
        caption_entities=entities,
        reply_markup=keyboard,
    )


def callback_update(data: str, message: Message, from_user: User) -> Update:
    update_id = next(_update_ids)
    return Update(
        update_id=update_id,
        callback_query=CallbackQuery(
            id=f"cb{update_id}",
            from_user=from_user,
            chat_instance="ci",
            message=message,
            data=data,
        ),
    )


def command_update(
    text: str, chat_id: int, from_user: User, chat_type: str = "supergroup"
) -> Update:
    update_id = next(_update_ids)
    command = text.split()[0]
    return Update(
        update_id=update_id,
        message=Message(
            message_id=update_id,
            date=datetime.now(UTC),
            chat=Chat(id=chat_id, type=chat_type, title="team" if chat_type != "private" else None),
            from_user=from_user,
            text=text,
            entities=[MessageEntity(type="bot_command", offset=0, length=len(command))],
        ),
    )


def anonymous_admin_update(text: str, chat_id: int, sender_chat_id: int | None = None) -> Update:
    """A command an admin sent as the chat (`sender_chat` the chat itself, unless given)."""
    update = command_update(text, chat_id, GROUP_ANONYMOUS_BOT)
    assert update.message is not None
    sender_chat = Chat(
        id=chat_id if sender_chat_id is None else sender_chat_id,
        type="supergroup" if sender_chat_id is None else "channel",
        title="team",
    )
    return update.model_copy(
        update={"message": update.message.model_copy(update={"sender_chat": sender_chat})}
    )


def text_message(chat_id: int, message_id: int, text: str) -> Message:
    return Message(
        message_id=message_id,
        date=datetime.now(UTC),
        chat=Chat(id=chat_id, type="supergroup", title="team"),
        from_user=BOT_USER,
        text=text,
    )
