"""posting_queue: only the items in flight."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from db.models import MediaItem, PostingQueueItem
from db.repositories.base import Repository, lapsed
from db.vocabulary import QueueStatus

_SENDING = PostingQueueItem.status == QueueStatus.SENDING
_PUBLISHING = PostingQueueItem.status == QueueStatus.PUBLISHING


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
    ) -> uuid.UUID | None:
        """Put the item in flight as `sending`; None if it is already queued.

        A caller-made `queue_id` lets a retry find the row its first attempt wrote.
        """
        values: dict[str, object] = {
            "media_item_id": media_item_id,
            "chat_id": chat_id,
            "status": QueueStatus.SENDING,
            "scheduled_for": scheduled_for,
            "claimed_at": func.now(),
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

    async def reclaim(self, queue_id: uuid.UUID, attempts: int) -> bool:
        """Count send attempt number `attempts` on a `sending` row and renew its claim.

        It sets the count (never below what is there), so a repeat counts nothing twice.
        """
        return await self._set(
            queue_id,
            _SENDING,
            claimed_at=func.now(),
            send_attempts=func.greatest(PostingQueueItem.send_attempts, attempts),
        )

    async def renew_claim(self, queue_id: uuid.UUID) -> bool:
        """The sender is still at it: keeps the stuck-row sweep of other processes away."""
        return await self._set(queue_id, _SENDING, claimed_at=func.now())

    async def mark_sent(self, queue_id: uuid.UUID, telegram_message_id: int) -> bool:
        """`sending` -> `sent`; a row already pressed or held by an Auto Post is left alone."""
        return await self._set(
            queue_id,
            _SENDING,
            status=QueueStatus.SENT,
            telegram_message_id=telegram_message_id,
            sent_at=func.now(),
        )

    async def mark_unconfirmed(self, queue_id: uuid.UUID) -> bool:
        """A send whose outcome is unknown: the row stays actionable as `sent`, no message id."""
        return await self._set(
            queue_id, _SENDING, status=QueueStatus.SENT, claimed_at=None, sent_at=func.now()
        )

    async def release(self, queue_id: uuid.UUID) -> PostingQueueItem | None:
        """Remove a `sending` row (a failed send frees its item); return what was removed."""
        statement = (
            delete(PostingQueueItem)
            .where(PostingQueueItem.id == queue_id, _SENDING)
            .returning(PostingQueueItem)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def stuck_sending(self, older_than: datetime) -> list[PostingQueueItem]:
        """Rows a crashed process left in `sending`, locked so one process takes each."""
        statement = (
            select(PostingQueueItem)
            .where(_SENDING, PostingQueueItem.claimed_at < older_than)
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
        lease_before: datetime,
        message_id: int | None = None,
    ) -> PostingQueueItem | None:
        """Hold a sent item for an Auto Post under `token`; None if it is not ours to take.

        A hold whose lease ran out is taken over only when no publish request can
        have left for it (no marker, no media id): those are the resolver's.
        A row without a message id (a send Telegram never confirmed) takes the
        pressed message's, so the progress and the result are shown there.
        """
        statement = (
            update(PostingQueueItem)
            .where(
                PostingQueueItem.id == queue_id,
                PostingQueueItem.chat_id == chat_id,
                or_(
                    PostingQueueItem.status == QueueStatus.SENT,
                    and_(
                        _PUBLISHING,
                        PostingQueueItem.instagram_publish_requested_at.is_(None),
                        PostingQueueItem.instagram_media_id.is_(None),
                        lapsed(PostingQueueItem.claimed_at, lease_before),
                    ),
                ),
            )
            .values(
                status=QueueStatus.PUBLISHING,
                claimed_at=func.now(),
                autopost_claim_token=token,
                autopost_requested_by=requested_by,
                instagram_creation_id=None,
                telegram_message_id=func.coalesce(PostingQueueItem.telegram_message_id, message_id),
            )
            .returning(PostingQueueItem)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def renew_autopost(self, queue_id: uuid.UUID, token: uuid.UUID, **values: Any) -> bool:
        """Extend the hold `token` has (setting `values` with it); False if it is lost."""
        return await self._set(queue_id, _held_by(token), claimed_at=func.now(), **values)

    async def hand_over_autopost(self, queue_id: uuid.UUID, token: uuid.UUID) -> bool:
        """Give up the hold but keep the row `publishing`: any process's resolver takes it now."""
        return await self._set(queue_id, _held_by(token), claimed_at=None)

    async def release_autopost(self, queue_id: uuid.UUID, token: uuid.UUID) -> bool:
        """Give the item back to the buttons; only while nothing is known to be published."""
        return await self._set(
            queue_id,
            and_(_held_by(token), PostingQueueItem.instagram_media_id.is_(None)),
            status=QueueStatus.SENT,
            claimed_at=None,
            autopost_claim_token=None,
            autopost_requested_by=None,
            instagram_creation_id=None,
            instagram_publish_requested_at=None,
        )

    async def take_autopost_lease(
        self, queue_id: uuid.UUID, token: uuid.UUID, lease_before: datetime
    ) -> PostingQueueItem | None:
        """Take a `publishing` row nobody holds (handed over, or its holder went silent)."""
        statement = (
            update(PostingQueueItem)
            .where(
                PostingQueueItem.id == queue_id,
                _PUBLISHING,
                lapsed(PostingQueueItem.claimed_at, lease_before),
            )
            .values(claimed_at=func.now(), autopost_claim_token=token)
            .returning(PostingQueueItem)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def autoposts_to_resolve(self, lease_before: datetime) -> list[uuid.UUID]:
        """`publishing` rows nobody holds: their outcome is unknown or their holder died."""
        statement = select(PostingQueueItem.id).where(
            _PUBLISHING, lapsed(PostingQueueItem.claimed_at, lease_before)
        )
        return list((await self._session.execute(statement)).scalars())

    async def claim_many_for_sending(self, claims: Sequence[SendingClaim]) -> set[uuid.UUID]:
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
                        "send_attempts": 1,
                    }
                    for claim in claims
                ]
            )
            .on_conflict_do_nothing(index_elements=[PostingQueueItem.media_item_id])
            .returning(PostingQueueItem.id)
        )
        return set((await self._session.execute(statement)).scalars())
