"""The team's notifier: queue items and the lines about them, rendered and sent."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import FSInputFile, InputFile, Message

from bot.presentation.captions import notification_caption
from bot.presentation.keyboards import put_back_keyboard, queue_keyboard
from bot.presentation.texts import UNCONFIRMED_NOTICE, returned_to_library, set_aside_notice
from bot.services.notifier import ClaimedItem, MediaFileMissingError
from db.vocabulary import MediaKind

logger = structlog.get_logger(__name__)


class TelegramNotifier:
    """The `Notifier` of the running bot: captions, keyboards and texts, through the Bot API."""

    def __init__(
        self, bot: Bot, media_dir: Path, *, instagram: bool | Callable[[int], bool]
    ) -> None:
        self._bot = bot
        self._media_dir = media_dir
        self._instagram = instagram

    def media_dir_reachable(self) -> bool:
        """MEDIA_DIR is there and can be listed (a missing file is then the file's fault)."""
        return os.access(self._media_dir, os.R_OK | os.X_OK) and self._media_dir.is_dir()

    async def send(self, item: ClaimedItem) -> Message:
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
        # The 🤖 button only in chats with their own Instagram account.
        return self._instagram(chat_id) if callable(self._instagram) else self._instagram

    async def send_unconfirmed_notice(self, item: ClaimedItem) -> Message:
        """A text with the item's buttons: the team can act even if the media never arrived."""
        text = (
            UNCONFIRMED_NOTICE + "\n\n" + notification_caption(item.file_name, item.category, None)
        )
        keyboard = queue_keyboard(
            item.queue_id,
            instagram=self._has_instagram(item.chat_id),
            manual_only=item.autopost_refusal is not None,
        )
        return await self._bot.send_message(
            item.chat_id, text, reply_markup=keyboard, message_thread_id=item.message_thread_id
        )

    async def send_returned_to_library(
        self, chat_id: int, file_names: list[str], lifetime_days: int, topic: int | None
    ) -> Message:
        """Items nobody pressed in time went back to the library, in the queue's topic."""
        return await self._bot.send_message(
            chat_id, returned_to_library(file_names, lifetime_days), message_thread_id=topic
        )

    async def send_set_aside_notice(self, item: ClaimedItem, reason: str) -> Message:
        """Which file was set aside and why, with the admins' ↩️ Put back button."""
        return await self._bot.send_message(
            item.chat_id,
            set_aside_notice(item.file_path, reason),
            reply_markup=put_back_keyboard(item.media_item_id),
            message_thread_id=item.message_thread_id,
        )

    async def _send(self, item: ClaimedItem, source: str | InputFile) -> Message:
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
        # Every kind of send carries the same caption, buttons and topic.
        shown: dict[str, Any] = {
            "caption": caption,
            "reply_markup": keyboard,
            "message_thread_id": item.message_thread_id,
        }
        if item.media_kind == MediaKind.PHOTO:
            return await self._bot.send_photo(item.chat_id, source, **shown)
        if item.mime_type == "image/gif":
            return await self._bot.send_animation(item.chat_id, source, **shown)
        return await self._bot.send_video(item.chat_id, source, supports_streaming=True, **shown)
