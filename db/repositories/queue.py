"""posting_queue: only the items in flight."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Uuid,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert

from db.models import ChatSettings, MediaItem, PostingQueueItem
from db.repositories.base import Repository, lease_ended, lease_until, rows_table
from db.vocabulary import QueueStatus

_SENDING = PostingQueueItem.status == QueueStatus.SENDING
_PUBLISHING = PostingQueueItem.status == QueueStatus.PUBLISHING


def abandoned_autopost(item: Any = PostingQueueItem) -> ColumnElement[bool]:
    """An Auto Post hold anyone may take over: its lease ended before a publish request left.

    The one rule for both the claim of 🤖 and the press statement (which renders
    it against its alias). After a publish request may have left, only the
    resolver settles the row, however long its lease has been over.
    """
    return and_(
        item.status == QueueStatus.PUBLISHING,
        lease_ended(item.lease_expires_at),
        item.instagram_publish_requested_at.is_(None),
        item.instagram_media_id.is_(None),
    )


def _held_by(token: uuid.UUID) -> ColumnElement[bool]:
    """An Auto Post hold that `token` still has."""
    return and_(_PUBLISHING, PostingQueueItem.autopost_claim_token == token)


@dataclass(frozen=True, slots=True)
class SendingClaim:
    """One item to put in flight for a chat's slot, under a caller-made queue id."""

    queue_id: uuid.UUID
    media_item_id: uuid.UUID
    chat_id: int
    slot: datetime


class QueueRepository(Repository):
    async def _set(
        self, queue_id: uuid.UUID, condition: ColumnElement[bool], **values: Any
    ) -> bool:
        """Set `values` on the row while `condition` holds; False when it no longer does."""
        statement = (
            update(PostingQueueItem)
            .where(PostingQueueItem.id == queue_id, condition)
            .values(**values)
        )
        return bool(await self._rows_changed(statement))

    async def claim_for_sending(
        self,
        media_item_id: uuid.UUID,
        chat_id: int,
        scheduled_for: datetime,
        queue_id: uuid.UUID | None = None,
        *,
        lease: timedelta,
    ) -> uuid.UUID | None:
        """Put the item in flight as `sending`, held for `lease`; None if it is already queued.

        A caller-made `queue_id` lets a retry find the row its first attempt wrote.
        """
        values: dict[str, object] = {
            "media_item_id": media_item_id,
            "chat_id": chat_id,
            "status": QueueStatus.SENDING,
            "scheduled_for": scheduled_for,
            "claimed_at": func.now(),
            "lease_expires_at": lease_until(lease),
            "send_attempts": 1,
        }
        if queue_id is not None:
            values["id"] = queue_id
        statement = (
            insert(PostingQueueItem)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[PostingQueueItem.media_item_id])
            .returning(PostingQueueItem.id)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def get(self, queue_id: uuid.UUID) -> PostingQueueItem | None:
        statement = select(PostingQueueItem).where(PostingQueueItem.id == queue_id)
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def get_many(self, queue_ids: list[uuid.UUID]) -> list[PostingQueueItem]:
        statement = select(PostingQueueItem).where(PostingQueueItem.id.in_(queue_ids))
        return list((await self._session.execute(statement)).scalars())

    async def reclaim(self, queue_id: uuid.UUID, attempts: int, lease: timedelta) -> bool:
        """Count send attempt number `attempts` on a `sending` row and renew its claim.

        It sets the count (never below what is there), so a repeat counts nothing twice.
        """
        return await self._set(
            queue_id,
            _SENDING,
            claimed_at=func.now(),
            lease_expires_at=lease_until(lease),
            send_attempts=func.greatest(PostingQueueItem.send_attempts, attempts),
        )

    async def renew_claim(self, queue_id: uuid.UUID, lease: timedelta) -> bool:
        """The sender is still at it: keeps the stuck-row sweep of other processes away."""
        return await self._set(
            queue_id, _SENDING, claimed_at=func.now(), lease_expires_at=lease_until(lease)
        )

    async def mark_sent(self, queue_id: uuid.UUID, telegram_message_id: int) -> bool:
        """`sending` -> `sent` with the message id; a row pressed or held by an Auto Post is left.

        A row another process already settled with the unconfirmed notice (our lease
        ran out while the database was away) still takes the id it lacks.
        """
        unconfirmed = and_(
            PostingQueueItem.status == QueueStatus.SENT,
            PostingQueueItem.telegram_message_id.is_(None),
        )
        return await self._set(
            queue_id,
            or_(_SENDING, unconfirmed),
            status=QueueStatus.SENT,
            telegram_message_id=telegram_message_id,
            sent_at=func.coalesce(PostingQueueItem.sent_at, func.now()),
            lease_expires_at=None,
        )

    async def mark_many_sent(self, sent: Sequence[tuple[uuid.UUID, int]]) -> int:
        """`mark_sent` for many (queue id, message id) pairs in one statement; rows changed."""
        if not sent:
            return 0
        messages = rows_table(
            "sent_messages", [("queue_id", Uuid()), ("message_id", BigInteger())], sent
        )
        unconfirmed = and_(
            PostingQueueItem.status == QueueStatus.SENT,
            PostingQueueItem.telegram_message_id.is_(None),
        )
        statement = (
            update(PostingQueueItem)
            .where(PostingQueueItem.id == messages.c.queue_id, or_(_SENDING, unconfirmed))
            .values(
                status=QueueStatus.SENT,
                telegram_message_id=messages.c.message_id,
                sent_at=func.coalesce(PostingQueueItem.sent_at, func.now()),
                lease_expires_at=None,
            )
        )
        return await self._rows_changed(statement)

    async def release_unsent(self, queue_id: uuid.UUID) -> bool:
        """A claim whose first send never started (shutdown): its lease ends now and no attempt
        is counted, so the next sweep sends it as it would have been, with no notice."""
        return await self._set(
            queue_id,
            and_(_SENDING, PostingQueueItem.send_attempts == 1),
            send_attempts=0,
            lease_expires_at=func.now(),
        )

    async def mark_unconfirmed(self, queue_id: uuid.UUID) -> bool:
        """A send whose outcome is unknown: the row stays actionable as `sent`, no message id."""
        return await self._set(
            queue_id,
            _SENDING,
            status=QueueStatus.SENT,
            claimed_at=None,
            lease_expires_at=None,
            sent_at=func.now(),
        )

    async def mark_notice(self, queue_id: uuid.UUID) -> datetime | None:
        """Mark the unconfirmed-send notice as going out; None if it was marked already."""
        statement = (
            update(PostingQueueItem)
            .where(
                PostingQueueItem.id == queue_id,
                _SENDING,
                PostingQueueItem.unconfirmed_notice_at.is_(None),
            )
            .values(unconfirmed_notice_at=func.now())
            .returning(PostingQueueItem.unconfirmed_notice_at)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def unmark_notice(self, queue_id: uuid.UUID, marked_at: datetime) -> bool:
        """The notice certainly never reached Telegram: a later sweep may send it."""
        return await self._set(
            queue_id,
            and_(_SENDING, PostingQueueItem.unconfirmed_notice_at == marked_at),
            unconfirmed_notice_at=None,
        )

    async def release(self, queue_id: uuid.UUID) -> PostingQueueItem | None:
        """Remove a `sending` row (a failed send frees its item); return what was removed."""
        statement = (
            delete(PostingQueueItem)
            .where(PostingQueueItem.id == queue_id, _SENDING)
            .returning(PostingQueueItem)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def stuck_sending(self) -> list[PostingQueueItem]:
        """Rows whose sender's lease ran out (it crashed), locked so one process takes each."""
        statement = (
            select(PostingQueueItem)
            .where(_SENDING, lease_ended(PostingQueueItem.lease_expires_at))
            .with_for_update(skip_locked=True)
        )
        return list((await self._session.execute(statement)).scalars())

    async def in_flight(self, chat_id: int) -> list[tuple[PostingQueueItem, MediaItem]]:
        statement = (
            select(PostingQueueItem, MediaItem)
            .join(MediaItem, MediaItem.id == PostingQueueItem.media_item_id)
            .where(PostingQueueItem.chat_id == chat_id)
            .order_by(PostingQueueItem.created_at)
        )
        return [(row[0], row[1]) for row in await self._session.execute(statement)]

    async def claim_for_autopost(
        self,
        queue_id: uuid.UUID,
        chat_id: int,
        *,
        token: uuid.UUID,
        requested_by: int,
        lease: timedelta,
        message_id: int | None = None,
    ) -> PostingQueueItem | None:
        """Hold a sent item for an Auto Post under `token`; None if it is not ours to take.

        A hold whose lease ran out is taken over only when no publish request can
        have left for it (no marker, no media id): those are the resolver's.
        A row without a message id (a send Telegram never confirmed) takes the
        pressed message's, so the progress and the result are shown there.
        An item index found Instagram would refuse (manual only) is never held.
        """
        statement = (
            update(PostingQueueItem)
            .where(
                PostingQueueItem.id == queue_id,
                PostingQueueItem.chat_id == chat_id,
                or_(PostingQueueItem.status == QueueStatus.SENT, abandoned_autopost()),
                ~select(MediaItem.id)
                .where(
                    MediaItem.id == PostingQueueItem.media_item_id,
                    MediaItem.autopost_refusal.is_not(None),
                )
                .exists(),
            )
            .values(
                status=QueueStatus.PUBLISHING,
                claimed_at=func.now(),
                lease_expires_at=lease_until(lease),
                autopost_claim_token=token,
                autopost_requested_by=requested_by,
                instagram_creation_id=None,
                telegram_message_id=func.coalesce(PostingQueueItem.telegram_message_id, message_id),
            )
            .returning(PostingQueueItem)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def renew_autopost(
        self, queue_id: uuid.UUID, token: uuid.UUID, lease: timedelta, **values: Any
    ) -> bool:
        """Extend the hold `token` has (setting `values` with it); False if it is lost."""
        return await self._set(
            queue_id,
            _held_by(token),
            claimed_at=func.now(),
            lease_expires_at=lease_until(lease),
            **values,
        )

    async def hand_over_autopost(self, queue_id: uuid.UUID, token: uuid.UUID) -> bool:
        """Give up the hold but keep the row `publishing`: any process's resolver takes it now."""
        return await self._set(queue_id, _held_by(token), claimed_at=None, lease_expires_at=None)

    async def release_autopost(self, queue_id: uuid.UUID, token: uuid.UUID) -> bool:
        """Give the item back to the buttons; only while nothing is known to be published."""
        return await self._set(
            queue_id,
            and_(_held_by(token), PostingQueueItem.instagram_media_id.is_(None)),
            status=QueueStatus.SENT,
            claimed_at=None,
            lease_expires_at=None,
            autopost_claim_token=None,
            autopost_requested_by=None,
            instagram_creation_id=None,
            instagram_publish_requested_at=None,
        )

    async def take_autopost_lease(
        self, queue_id: uuid.UUID, token: uuid.UUID, lease: timedelta
    ) -> PostingQueueItem | None:
        """Take a `publishing` row nobody holds (handed over, or its holder went silent)."""
        statement = (
            update(PostingQueueItem)
            .where(
                PostingQueueItem.id == queue_id,
                _PUBLISHING,
                lease_ended(PostingQueueItem.lease_expires_at),
            )
            .values(
                claimed_at=func.now(),
                lease_expires_at=lease_until(lease),
                autopost_claim_token=token,
            )
            .returning(PostingQueueItem)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def autoposts_to_resolve(self) -> list[uuid.UUID]:
        """`publishing` rows nobody holds: their outcome is unknown or their holder died."""
        statement = select(PostingQueueItem.id).where(
            _PUBLISHING, lease_ended(PostingQueueItem.lease_expires_at)
        )
        return list((await self._session.execute(statement)).scalars())

    async def return_unpressed(self, now: datetime) -> list[ReturnedItem]:
        """Remove the `sent` rows nobody pressed within their chat's lifetime (sent_ttl_days).

        The item goes back to the library as if never sent (no history row: nothing
        happened to it). Rows another process is removing right now are skipped.
        """
        lifetime = func.make_interval(0, 0, 0, ChatSettings.sent_ttl_days)
        expired = (
            select(PostingQueueItem.id)
            .join(ChatSettings, ChatSettings.telegram_chat_id == PostingQueueItem.chat_id)
            .where(
                PostingQueueItem.status == QueueStatus.SENT,
                PostingQueueItem.sent_at < now - lifetime,
            )
            .with_for_update(of=PostingQueueItem, skip_locked=True)
        )
        removed = (
            delete(PostingQueueItem)
            .where(PostingQueueItem.id.in_(expired.scalar_subquery()))
            .returning(
                PostingQueueItem.id, PostingQueueItem.chat_id, PostingQueueItem.media_item_id
            )
            .cte("removed")
        )
        statement = (
            select(removed.c.id, removed.c.chat_id, MediaItem.file_name, ChatSettings)
            .join(MediaItem, MediaItem.id == removed.c.media_item_id)
            .join(ChatSettings, ChatSettings.telegram_chat_id == removed.c.chat_id)
            .order_by(removed.c.chat_id, MediaItem.file_name)
        )
        return [
            ReturnedItem(
                row.id,
                row.chat_id,
                row.file_name,
                row.ChatSettings.message_thread_id,
                row.ChatSettings.sent_ttl_days,
            )
            for row in await self._session.execute(statement)
        ]

    async def claim_many_for_sending(
        self, claims: Sequence[SendingClaim], *, lease: timedelta
    ) -> set[uuid.UUID]:
        """`claim_for_sending` for many items in one statement; the ids of the rows written.

        An item already queued (ON CONFLICT on its media item) is left out.
        """
        if not claims:
            return set()
        statement = (
            insert(PostingQueueItem)
            .values(
                [
                    {
                        "id": claim.queue_id,
                        "media_item_id": claim.media_item_id,
                        "chat_id": claim.chat_id,
                        "status": QueueStatus.SENDING,
                        "scheduled_for": claim.slot,
                        "claimed_at": func.now(),
                        "lease_expires_at": lease_until(lease),
                        "send_attempts": 1,
                    }
                    for claim in claims
                ]
            )
            .on_conflict_do_nothing(index_elements=[PostingQueueItem.media_item_id])
            .returning(PostingQueueItem.id)
        )
        return set((await self._session.execute(statement)).scalars())


@dataclass(frozen=True, slots=True)
class ReturnedItem:
    """A sent item nobody pressed in time, back in the library."""

    queue_id: uuid.UUID
    chat_id: int
    file_name: str
    message_thread_id: int | None
    lifetime_days: int


class InFlightRepository(Repository):
    """An admin's drop or resend of one `sent` item, from the message it was shown at."""

    def _shown_at(self, queue_id: uuid.UUID, chat_id: int, message_id: int | None) -> Any:
        return and_(
            PostingQueueItem.id == queue_id,
            PostingQueueItem.chat_id == chat_id,
            PostingQueueItem.status == QueueStatus.SENT,
            PostingQueueItem.telegram_message_id.is_not_distinct_from(message_id),
        )

    async def drop(self, queue_id: uuid.UUID, chat_id: int, message_id: int | None) -> bool:
        """Remove the row while it is still `sent` at that message: the item is free again."""
        statement = delete(PostingQueueItem).where(self._shown_at(queue_id, chat_id, message_id))
        return bool(await self._rows_changed(statement))

    async def claim_resend(
        self,
        queue_id: uuid.UUID,
        chat_id: int,
        message_id: int | None,
        stamp: datetime,
        *,
        lease: timedelta,
    ) -> bool:
        """`sent` at that message -> `sending`, claimed at `stamp` and held for `lease`.

        `stamp` is our own, for a re-read; the lease, like every claim's, keeps the
        stuck-row sweeps away while the resend is in flight.

        Held for `lease` like any send: a `sending` row without one is a crashed
        sender's to the sweep. Counted as a second send (the first message is in
        the chat): a crash mid-resend leaves the row to the stuck-row sweep, which
        sends no third message but a notice with the item's buttons.
        """
        statement = (
            update(PostingQueueItem)
            .where(self._shown_at(queue_id, chat_id, message_id))
            .values(
                status=QueueStatus.SENDING,
                claimed_at=stamp,
                lease_expires_at=lease_until(lease),
                send_attempts=2,
            )
        )
        return bool(await self._rows_changed(statement))
