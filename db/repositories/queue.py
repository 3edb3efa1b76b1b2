"""posting_queue: only the items in flight."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import MediaItem, PostingQueueItem


class QueueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

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
            "status": "sending",
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
        result = await self._session.execute(
            update(PostingQueueItem)
            .where(PostingQueueItem.id == queue_id, PostingQueueItem.status == "sending")
            .values(
                claimed_at=func.now(),
                send_attempts=func.greatest(PostingQueueItem.send_attempts, attempts),
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew_claim(self, queue_id: uuid.UUID) -> bool:
        """The sender is still at it: keeps the stuck-row sweep of other processes away."""
        result = await self._session.execute(
            update(PostingQueueItem)
            .where(PostingQueueItem.id == queue_id, PostingQueueItem.status == "sending")
            .values(claimed_at=func.now())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_sent(self, queue_id: uuid.UUID, telegram_message_id: int) -> bool:
        """`sending` -> `sent`; a row already pressed or held by an Auto Post is left alone."""
        result = await self._session.execute(
            update(PostingQueueItem)
            .where(PostingQueueItem.id == queue_id, PostingQueueItem.status == "sending")
            .values(status="sent", telegram_message_id=telegram_message_id, sent_at=func.now())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_unconfirmed(self, queue_id: uuid.UUID) -> bool:
        """A send whose outcome is unknown: the row stays actionable as `sent`, no message id."""
        result = await self._session.execute(
            update(PostingQueueItem)
            .where(PostingQueueItem.id == queue_id, PostingQueueItem.status == "sending")
            .values(status="sent", claimed_at=None, sent_at=func.now())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, queue_id: uuid.UUID) -> PostingQueueItem | None:
        """Remove a `sending` row (a failed send frees its item); return what was removed."""
        statement = (
            delete(PostingQueueItem)
            .where(PostingQueueItem.id == queue_id, PostingQueueItem.status == "sending")
            .returning(PostingQueueItem)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def stuck_sending(self, older_than: datetime) -> list[PostingQueueItem]:
        """Rows a crashed process left in `sending`, locked so one process takes each."""
        statement = (
            select(PostingQueueItem)
            .where(PostingQueueItem.status == "sending", PostingQueueItem.claimed_at < older_than)
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
                    PostingQueueItem.status == "sent",
                    and_(
                        PostingQueueItem.status == "publishing",
                        PostingQueueItem.instagram_publish_requested_at.is_(None),
                        PostingQueueItem.instagram_media_id.is_(None),
                        or_(
                            PostingQueueItem.claimed_at.is_(None),
                            PostingQueueItem.claimed_at < lease_before,
                        ),
                    ),
                ),
            )
            .values(
                status="publishing",
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
        result = await self._session.execute(
            update(PostingQueueItem)
            .where(
                PostingQueueItem.id == queue_id,
                PostingQueueItem.status == "publishing",
                PostingQueueItem.autopost_claim_token == token,
            )
            .values(claimed_at=func.now(), **values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def hand_over_autopost(self, queue_id: uuid.UUID, token: uuid.UUID) -> bool:
        """Give up the hold but keep the row `publishing`: any process's resolver takes it now."""
        result = await self._session.execute(
            update(PostingQueueItem)
            .where(
                PostingQueueItem.id == queue_id,
                PostingQueueItem.status == "publishing",
                PostingQueueItem.autopost_claim_token == token,
            )
            .values(claimed_at=None)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release_autopost(self, queue_id: uuid.UUID, token: uuid.UUID) -> bool:
        """Give the item back to the buttons; only while nothing is known to be published."""
        result = await self._session.execute(
            update(PostingQueueItem)
            .where(
                PostingQueueItem.id == queue_id,
                PostingQueueItem.status == "publishing",
                PostingQueueItem.autopost_claim_token == token,
                PostingQueueItem.instagram_media_id.is_(None),
            )
            .values(
                status="sent",
                claimed_at=None,
                autopost_claim_token=None,
                autopost_requested_by=None,
                instagram_creation_id=None,
                instagram_publish_requested_at=None,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def take_autopost_lease(
        self, queue_id: uuid.UUID, token: uuid.UUID, lease_before: datetime
    ) -> PostingQueueItem | None:
        """Take a `publishing` row nobody holds (handed over, or its holder went silent)."""
        statement = (
            update(PostingQueueItem)
            .where(
                PostingQueueItem.id == queue_id,
                PostingQueueItem.status == "publishing",
                or_(
                    PostingQueueItem.claimed_at.is_(None),
                    PostingQueueItem.claimed_at < lease_before,
                ),
            )
            .values(claimed_at=func.now(), autopost_claim_token=token)
            .returning(PostingQueueItem)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def autoposts_to_resolve(self, lease_before: datetime) -> list[uuid.UUID]:
        """`publishing` rows nobody holds: their outcome is unknown or their holder died."""
        statement = select(PostingQueueItem.id).where(
            PostingQueueItem.status == "publishing",
            or_(
                PostingQueueItem.claimed_at.is_(None),
                PostingQueueItem.claimed_at < lease_before,
            ),
        )
        return list((await self._session.execute(statement)).scalars())
