"""Sending a queue item to the team chat as a photo, video or animation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import FSInputFile, InputFile, Message

from bot.captions import notification_caption
from bot.keyboards import put_back_keyboard, queue_keyboard
from db.models import MediaItem
from db.vocabulary import MediaKind

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Notification:
    """What is needed to send one item, copied out of the session that claimed it."""

    queue_id: uuid.UUID
    chat_id: int
    media_item_id: uuid.UUID
    file_path: str
    file_name: str
    media_kind: MediaKind
    mime_type: str
    category: str | None
    caption: str | None
    telegram_file_id: str | None
    # Which send attempt of the queue row this is (1 for a fresh claim).
    attempt: int = 1
    # The forum topic the chat's queue lives in (None: General, or not a forum).
    message_thread_id: int | None = None
    # Why Instagram would refuse the file (set by index): no 🤖 button, the caption says why.
    autopost_refusal: str | None = None

    @classmethod
    def of(
        cls,
        queue_id: uuid.UUID,
        media: MediaItem,
        attempt: int = 1,
        *,
        message_thread_id: int | None = None,
    ) -> Notification:
        """The send of queue row `queue_id`, with what it needs of its library row."""
        return cls(
            queue_id=queue_id,
            chat_id=media.chat_id,
            media_item_id=media.id,
            file_path=media.file_path,
            file_name=media.file_name,
            media_kind=MediaKind(media.media_kind),
            mime_type=media.mime_type,
            category=media.category,
            caption=media.caption,
            telegram_file_id=media.telegram_file_id,
            attempt=attempt,
            message_thread_id=message_thread_id,
            autopost_refusal=media.autopost_refusal,
        )


class MediaFileMissingError(Exception):
    """The library file is gone or unreadable; the item cannot be sent."""


def sent_file_id(message: Message) -> str | None:
    if message.photo:
        return message.photo[-1].file_id
    if message.video:
        return message.video.file_id
    if message.animation:
        return message.animation.file_id
    return None


class Notifier:
    def __init__(
        self, bot: Bot, media_dir: Path, *, instagram: bool | Callable[[int], bool]
    ) -> None:
        self._bot = bot
        self._media_dir = media_dir
        self._instagram = instagram

    def media_dir_reachable(self) -> bool:
        """MEDIA_DIR is there and can be listed (a missing file is then the file's fault)."""
        return os.access(self._media_dir, os.R_OK | os.X_OK) and self._media_dir.is_dir()

    async def send(self, item: Notification) -> Message:
        """Send once; reuse the cached Telegram file id, uploading only when there is none."""
        if item.telegram_file_id:
            try:
                return await self._send(item, item.telegram_file_id)
            except TelegramBadRequest as error:
                if "file" not in error.message.lower():
                    raise
                logger.warning("notify.file_id_rejected", media_item_id=str(item.media_item_id))
        path = self._media_dir / item.file_path
        if not path.is_file():
            raise MediaFileMissingError(f"media file not found: {item.file_path}")
        return await self._send(item, FSInputFile(path, filename=item.file_name))

    def _has_instagram(self, chat_id: int) -> bool:
        # igcare: the 🤖 button only in chats with their own Instagram account.
        return self._instagram(chat_id) if callable(self._instagram) else self._instagram

    async def send_unconfirmed_notice(self, item: Notification) -> Message:
        """A text with the item's buttons: the team can act even if the media never arrived."""
        text = (
            "⚠️ Telegram didn't confirm that this item arrived. "
            "If you see it above, its buttons work; these work too.\n\n"
            + notification_caption(item.file_name, item.category, None)
        )
        keyboard = queue_keyboard(
            item.queue_id,
            instagram=self._has_instagram(item.chat_id),
            manual_only=item.autopost_refusal is not None,
        )
        return await self._bot.send_message(
            item.chat_id, text, reply_markup=keyboard, message_thread_id=item.message_thread_id
        )

    async def send_line(self, chat_id: int, text: str, topic: int | None) -> Message:
        """A line for the team, in the topic the queue lives in."""
        return await self._bot.send_message(chat_id, text, message_thread_id=topic)

    async def send_set_aside_notice(self, item: Notification, reason: str) -> Message:
        """Which file was set aside and why, with the admins' ↩️ Put back button."""
        # Imported here: bot.texts reads the scheduler's vocabulary, which imports this module.
        from bot.texts import set_aside_notice

        return await self._bot.send_message(
            item.chat_id,
            set_aside_notice(item.file_path, reason),
            reply_markup=put_back_keyboard(item.media_item_id),
            message_thread_id=item.message_thread_id,
        )

    async def _send(self, item: Notification, source: str | InputFile) -> Message:
        instagram = self._has_instagram(item.chat_id)
        caption = notification_caption(
            item.file_name,
            item.category,
            item.caption,
            manual_only=item.autopost_refusal if instagram else None,
        )
        keyboard = queue_keyboard(
            item.queue_id, instagram=instagram, manual_only=item.autopost_refusal is not None
        )
        topic = item.message_thread_id
        if item.media_kind == MediaKind.PHOTO:
            return await self._bot.send_photo(
                item.chat_id,
                source,
                caption=caption,
                reply_markup=keyboard,
                message_thread_id=topic,
            )
        if item.mime_type == "image/gif":
            return await self._bot.send_animation(
                item.chat_id,
                source,
                caption=caption,
                reply_markup=keyboard,
                message_thread_id=topic,
            )
        return await self._bot.send_video(
            item.chat_id,
            source,
            caption=caption,
            reply_markup=keyboard,
            supports_streaming=True,
            message_thread_id=topic,
        )
