"""Plain values every layer shares: who acted, what a press decides, what a send came to.

A leaf: it imports the standard library and the vocabulary of stored words
(`db.vocabulary`, itself a leaf), nothing else of ours, so handlers, services and
repositories can all speak it without importing one another.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from db.vocabulary import PostingMethod, Verdict

ANONYMOUS_ADMIN = "anonymous admin"


class UnavailableError(Exception):
    """What the rules need could not be reached, even after the retry; nothing is known to be done.

    `db.errors.DatabaseUnavailableError` is one; a handler catches this and asks for another try.
    """


@dataclass(frozen=True, slots=True)
class TelegramIdentity:
    """Who pressed or typed, as Telegram reported it.

    An anonymous admin wrote as the chat itself (Telegram's GroupAnonymousBot):
    Telegram does not say who, so there is no person to keep a `users` row for;
    `telegram_user_id` is then the chat's id, and only the log records them.
    """

    telegram_user_id: int
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    anonymous_admin: bool = False

    @property
    def display_name(self) -> str:
        if self.anonymous_admin:
            return ANONYMOUS_ADMIN
        full = " ".join(part for part in (self.first_name, self.last_name) if part)
        if full:
            return full
        if self.username:
            return f"@{self.username}"
        return f"user {self.telegram_user_id}"


@dataclass(frozen=True, slots=True)
class Press:
    """One button press: what `record` writes, and who pressed."""

    queue_id: uuid.UUID
    chat_id: int
    status: Verdict
    presser: TelegramIdentity
    telegram_message_id: int | None = None
    posting_method: PostingMethod = PostingMethod.TELEGRAM_MANUAL
    instagram_media_id: str | None = None
    completes_autopost: bool = False


class NothingToSend(StrEnum):
    """Why /next sent nothing."""

    EMPTY_LIBRARY = "empty_library"
    ALL_LOCKED = "all_locked"
    ALL_QUEUED = "all_queued"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one send of the next item came to."""

    sent: bool
    reason: NothingToSend | None = None
    queued: int = 0
    locked: int = 0
    total: int = 0
    set_aside: int = 0
    error: str | None = None
    # The forum topic the item went to (the queue's; None: General).
    topic: int | None = None
