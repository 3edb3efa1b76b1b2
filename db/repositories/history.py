"""posting_history: the permanent audit; never deleted."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update

from db.models import MediaItem, PostingHistory
from db.repositories.base import Repository
from db.vocabulary import HistoryStatus

# How long the sweep keeps trying to show a recorded Auto Post's outcome on its message.
CAPTION_REPAIR_WINDOW = timedelta(days=2)


class HistoryRepository(Repository):
    async def record_failed_send(
        self,
        *,
        media_item_id: uuid.UUID,
        chat_id: int,
        queue_created_at: datetime | None,
        scheduled_for: datetime | None,
        error_message: str,
    ) -> None:
        # queue_item_id stays NULL: the item is freed and may be queued again.
        await self._session.execute(
            insert(PostingHistory).values(
                media_item_id=media_item_id,
                chat_id=chat_id,
                status=HistoryStatus.FAILED,
                success=False,
                queue_created_at=queue_created_at,
                scheduled_for=scheduled_for,
                error_message=error_message[:1000],
            )
        )

    async def failed_at(self, media_item_id: uuid.UUID, acted_at: datetime) -> bool:
        """Is there a failed send of this item recorded at exactly this moment?"""
        statement = select(PostingHistory.id).where(
            PostingHistory.media_item_id == media_item_id,
            PostingHistory.status == HistoryStatus.FAILED,
            PostingHistory.acted_at == acted_at,
        )
        return (await self._session.execute(statement.limit(1))).first() is not None

    async def captions_pending(self) -> list[PostingHistory]:
        """Recorded Auto Posts whose message may still show a status line, not the outcome.

        Only recent ones: a message that cannot be edited (deleted) is not retried for ever.
        """
        statement = select(PostingHistory).where(
            PostingHistory.caption_pending_message_id.is_not(None),
            PostingHistory.acted_at > func.now() - CAPTION_REPAIR_WINDOW,
        )
        return list((await self._session.execute(statement)).scalars())

    async def caption_settled(self, queue_item_id: uuid.UUID) -> None:
        """The message shows the recorded outcome: nothing left to repair."""
        await self._session.execute(
            update(PostingHistory)
            .where(PostingHistory.queue_item_id == queue_item_id)
            .values(caption_pending_message_id=None)
        )

    async def recent(self, chat_id: int, limit: int) -> list[tuple[PostingHistory, MediaItem]]:
        statement = (
            select(PostingHistory, MediaItem)
            .join(MediaItem, MediaItem.id == PostingHistory.media_item_id)
            .where(PostingHistory.chat_id == chat_id)
            .order_by(PostingHistory.acted_at.desc())
            .limit(limit)
        )
        return [(row[0], row[1]) for row in await self._session.execute(statement)]

    async def last_posted(self, chat_id: int) -> PostingHistory | None:
        statement = (
            select(PostingHistory)
            .where(PostingHistory.chat_id == chat_id, PostingHistory.status == HistoryStatus.POSTED)
            .order_by(PostingHistory.acted_at.desc())
            .limit(1)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()
