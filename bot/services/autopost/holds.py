"""An Auto Post's hold on its queue row: take it, renew it, give the item back, hand it over.

A hold is the row's `autopost_claim_token` plus a lease (`lease_expires_at`,
the database's now() plus the holder's lease, renewed at each step; NULL =
handed over). Only SQL against now() judges whether anyone still holds it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import TelegramIdentity
from bot.services.autopost.board import ItemMessage
from bot.services.autopost.phases import AutoPostPhase, check_transition, phase_of
from bot.services.media_host import HostedMedia, MediaToHost
from db.errors import DatabaseUnavailableError
from db.models import MediaItem, PostingQueueItem, User
from db.repositories import ChatSettingsRepository, MediaRepository, QueueRepository
from db.retry import Idempotent, Reread, in_idempotent_transaction, in_transaction
from db.vocabulary import Framing, MediaKind, QueueStatus

logger = structlog.get_logger(__name__)

# The longest step a holder takes between two renewals is the wait for the
# container (the publish timeout) plus a few Graph requests of up to 20 s each.
LEASE_BEYOND_PUBLISH_TIMEOUT_SECONDS = 90.0


def autopost_lease(publish_timeout_seconds: float) -> timedelta:
    """How long a hold lasts unrenewed: past it, the hold is abandoned (the one lease rule)."""
    return timedelta(seconds=publish_timeout_seconds + LEASE_BEYOND_PUBLISH_TIMEOUT_SECONDS)


@dataclass(frozen=True, slots=True)
class Hold:
    """A `publishing` row as its holder knows it: whose, where it is shown, how far it got."""

    message: ItemMessage
    token: uuid.UUID
    presser: TelegramIdentity
    instagram_creation_id: str | None = None
    instagram_publish_requested_at: datetime | None = None
    instagram_media_id: str | None = None
    # The file Instagram is handed (prepared and hosted); its copy goes once the outcome is settled.
    media: MediaToHost | None = None

    @property
    def queue_id(self) -> uuid.UUID:
        return self.message.queue_id

    @property
    def chat_id(self) -> int:
        return self.message.chat_id

    @property
    def phase(self) -> AutoPostPhase:
        return phase_of(
            QueueStatus.PUBLISHING,
            instagram_creation_id=self.instagram_creation_id,
            instagram_publish_requested_at=self.instagram_publish_requested_at,
            instagram_media_id=self.instagram_media_id,
        )

    def advanced(self, **values: Any) -> Hold:
        """The hold with the step's column values; raises on a move the table does not list."""
        moved = replace(self, **values)
        if moved.phase != self.phase:
            check_transition(self.phase, moved.phase)
        return moved


@dataclass(slots=True)
class HoldProgress:
    """How far a publish got; read when it is cancelled or crashes."""

    hold: Hold
    # The press statement landed: the row is recorded, only the caption is left.
    recorded: bool = False
    # Where the media was put for Instagram to fetch; released once the outcome is settled.
    hosted: HostedMedia | None = None


async def hold_of(session: AsyncSession, row: PostingQueueItem, token: uuid.UUID) -> Hold:
    """The hold `token` has taken on `row`, its presser read from the database."""
    media = await MediaRepository(session).get(row.media_item_id)
    if media is None:  # a foreign key of the row
        raise LookupError(f"queue row {row.id} without its media")
    presser = await _identity(session, row.autopost_requested_by)
    chat = await ChatSettingsRepository(session).get(row.chat_id)
    framing = Framing.BLUR if chat is None else Framing(chat.photo_framing)
    return hold_from(row, media, token, presser, framing=framing)


def hold_from(
    row: PostingQueueItem,
    media: MediaItem,
    token: uuid.UUID,
    presser: TelegramIdentity,
    body: str | None = None,
    *,
    framing: Framing,
) -> Hold:
    """The hold `token` has on `row`, in plain values; `body`: the caption as shown, if known."""
    message = ItemMessage(
        queue_id=row.id,
        chat_id=row.chat_id,
        message_id=row.telegram_message_id,
        body=body,
        file_name=media.file_name,
        category=media.category,
        caption=media.caption,
    )
    return Hold(
        message=message,
        token=token,
        presser=presser,
        instagram_creation_id=row.instagram_creation_id,
        instagram_publish_requested_at=row.instagram_publish_requested_at,
        instagram_media_id=row.instagram_media_id,
        media=MediaToHost(media.file_path, MediaKind(media.media_kind), row.chat_id, framing),
    )


async def _identity(session: AsyncSession, telegram_user_id: int | None) -> TelegramIdentity:
    if telegram_user_id is None:
        return TelegramIdentity(0)
    user = (
        await session.execute(select(User).where(User.telegram_user_id == telegram_user_id))
    ).scalar_one_or_none()
    if user is None:
        return TelegramIdentity(telegram_user_id)
    return TelegramIdentity(user.telegram_user_id, user.username, user.first_name, user.last_name)


class Holds:
    """The writes to a row a token holds; each its own small transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], lease: timedelta) -> None:
        self._sessions = sessions
        self._lease = lease

    @property
    def lease(self) -> timedelta:
        return self._lease

    async def take(self, queue_id: uuid.UUID) -> Hold | None:
        """Take a `publishing` row nobody holds; None when someone does (or it is gone)."""
        token = uuid.uuid4()

        async def take(session: AsyncSession) -> Hold | None:
            row = await QueueRepository(session).take_autopost_lease(queue_id, token, self._lease)
            return None if row is None else await hold_of(session, row, token)

        async def recover(session: AsyncSession) -> Hold | None:
            row = await QueueRepository(session).get(queue_id)
            if row is None or row.autopost_claim_token != token:
                return None
            return await hold_of(session, row, token)

        return await in_transaction(
            self._sessions, take, repeat=Reread(recover), operation="autopost.lease"
        )

    async def advance(self, hold: Hold, **values: Any) -> Hold | None:
        """Extend the hold with the step's values; None (and say so) if we lost it."""
        moved = hold.advanced(**values)

        async def renew(session: AsyncSession) -> bool:
            return await QueueRepository(session).renew_autopost(
                hold.queue_id, hold.token, self._lease, **values
            )

        kept = await in_transaction(
            self._sessions,
            renew,
            repeat=Idempotent("it sets the same values under the same token"),
            operation="autopost.step",
        )
        if not kept:
            # Taken over after our lease ran out: the new holder owns the caption now.
            logger.warning("autopost.hold_lost", queue_id=str(hold.queue_id))
            return None
        return moved

    async def advance_quietly(self, hold: Hold, **values: Any) -> Hold:
        """`advance` whose write may be lost: the container's status finds the media again."""
        moved = hold.advanced(**values)
        await self._write(
            "autopost.remember",
            lambda queue: queue.renew_autopost(hold.queue_id, hold.token, self._lease, **values),
            why="it sets the same values under the same token",
            queue_id=hold.queue_id,
            **values,
        )
        return moved

    async def give_back(self, hold: Hold) -> bool:
        """The item back to `sent` (nothing was published); False if that could not be written."""
        check_transition(hold.phase, AutoPostPhase.OFFERED)
        # Unwritten, it stays held: the lease runs out and the sweep settles the row.
        return await self._write(
            "autopost.release",
            lambda queue: queue.release_autopost(hold.queue_id, hold.token),
            why="it only changes a row our token still holds",
            queue_id=hold.queue_id,
        )

    async def hand_over(self, hold: Hold) -> None:
        """Let go but keep the row `publishing`: any process's resolver takes it now."""
        # Unwritten, the lease runs out by itself; the sweep then resolves the row.
        await self._write(
            "autopost.hand_over",
            lambda queue: queue.hand_over_autopost(hold.queue_id, hold.token),
            why="it clears the lease of a row our token holds",
            queue_id=hold.queue_id,
        )

    async def _write(
        self,
        operation: str,
        write: Callable[[QueueRepository], Awaitable[object]],
        *,
        why: str,
        queue_id: uuid.UUID,
        **log_values: object,
    ) -> bool:
        """One write to a row our token holds; False (logged) when the database stayed away."""

        async def work(session: AsyncSession) -> None:
            await write(QueueRepository(session))

        try:
            await in_idempotent_transaction(self._sessions, work, operation=operation, because=why)
        except DatabaseUnavailableError:
            logger.error(f"{operation}_failed", queue_id=str(queue_id), **log_values)
            return False
        return True
