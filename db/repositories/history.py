"""posting_history: the permanent audit; never deleted."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import insert, select

from db.models import MediaItem, PostingHistory
from db.repositories.base import Repository
from db.vocabulary import HistoryStatus


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
