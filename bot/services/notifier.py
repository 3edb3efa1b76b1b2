"""Sending a queue item to the team chat: what a send needs, and the port that sends it.

`Notifier` is implemented in `bot.presentation.notifier` (captions, keyboards,
texts) and injected by the composition root, so the rules never render.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from aiogram.types import Message

from db.models import MediaItem
from db.repositories.base import copied
from db.vocabulary import MediaKind


@dataclass(frozen=True, slots=True)
class ClaimedItem:
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
    # Taken over from a sender that released it before any attempt: a plain send, no notice.
    never_sent: bool = False
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
        never_sent: bool = False,
    ) -> ClaimedItem:
        """The send of queue row `queue_id`, with what it needs of its library row."""
        return copied(
            cls,
            media,
            queue_id=queue_id,
            media_item_id=media.id,
            media_kind=MediaKind(media.media_kind),
            attempt=attempt,
            message_thread_id=message_thread_id,
            never_sent=never_sent,
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


class Notifier(Protocol):
    """Puts queue items and the lines about them in front of the team."""

    def media_dir_reachable(self) -> bool:
        """MEDIA_DIR is there and can be listed (a missing file is then the file's fault)."""
        ...

    async def send(self, item: ClaimedItem) -> Message:
        """The item with its caption and buttons, once."""
        ...

    async def send_unconfirmed_notice(self, item: ClaimedItem) -> Message:
        """A text with the item's buttons: the team can act even if the media never arrived."""
        ...

    async def send_set_aside_notice(self, item: ClaimedItem, reason: str) -> Message:
        """Which file was set aside and why, with the admins' ↩️ Put back button."""
        ...

    async def send_returned_to_library(
        self, chat_id: int, file_names: list[str], lifetime_days: int, topic: int | None
    ) -> Message:
        """Items nobody pressed in time went back to the library, in one line."""
        ...
