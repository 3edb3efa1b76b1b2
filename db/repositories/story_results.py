"""story_results: each Story seen live on a chat's account, with the last insights read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert

from db.models import StoryResult
from db.repositories.base import Repository
from db.vocabulary import STORY_METRICS, HistoryStatus, PostingMethod

STORY_LIFETIME = timedelta(hours=24)
READ_EVERY = timedelta(hours=1)

# A hand-posted Story is tied to a ✅ Posted press only when it is the one Story
# (not published by Auto Post) that went live in this window around the press,
# and that press the only one (window closed or not, tied or not) whose window
# holds it: a Story near two presses would be a guess.
TIE_MANUAL_SQL = text(
    """
    WITH presses AS (
        SELECT h.id, h.acted_at
        FROM posting_history h
        WHERE h.chat_id = :chat_id
          AND h.status = :posted
          AND h.posting_method = :manual
          AND h.acted_at BETWEEN :oldest AND :decided_before
          AND NOT EXISTS (SELECT 1 FROM story_results t WHERE t.history_id = h.id)
    ),
    candidates AS (
        SELECT p.id AS history_id, (array_agg(s.id))[1] AS story_id
        FROM presses p
        JOIN story_results s
          ON s.chat_id = :chat_id
         AND s.posted_at BETWEEN p.acted_at - :before AND p.acted_at + :after
        WHERE NOT EXISTS (
            SELECT 1 FROM posting_history a
            WHERE a.chat_id = :chat_id AND a.instagram_media_id = s.ig_media_id
        )
        GROUP BY p.id
        HAVING count(*) = 1
           AND NOT EXISTS (
            SELECT 1 FROM posting_history o
            WHERE o.chat_id = :chat_id AND o.id <> p.id
              AND o.status = :posted AND o.posting_method = :manual
              AND min(s.posted_at) BETWEEN o.acted_at - :before AND o.acted_at + :after
        )
    )
    UPDATE story_results s
    SET history_id = c.history_id
    FROM candidates c
    WHERE s.id = c.story_id AND s.history_id IS NULL
    """
)


class StoryResultsRepository(Repository):
    async def seen(
        self, chat_id: int, stories: Sequence[tuple[str, datetime | None]], now: datetime
    ) -> None:
        """Note each live Story once (ON CONFLICT DO NOTHING: listing again changes nothing)."""
        if not stories:
            return
        rows = [
            {
                "chat_id": chat_id,
                "ig_media_id": media_id,
                "posted_at": posted_at,
                "expires_at": (posted_at or now) + STORY_LIFETIME,
                "first_seen_at": now,
            }
            for media_id, posted_at in stories
        ]
        statement = insert(StoryResult).values(rows).on_conflict_do_nothing()
        await self._session.execute(statement)

    async def due(self, chat_id: int, media_ids: Sequence[str], now: datetime) -> list[str]:
        """Of these live Stories, the ones to read now: never read, read over an hour ago,
        or in their last hour and not yet read in it."""
        if not media_ids:
            return []
        last_hour = StoryResult.expires_at - READ_EVERY
        statement = (
            select(StoryResult.ig_media_id)
            .where(
                StoryResult.chat_id == chat_id,
                StoryResult.ig_media_id.in_(list(media_ids)),
                StoryResult.expires_at > now,
                or_(
                    StoryResult.last_read_at.is_(None),
                    StoryResult.last_read_at <= now - READ_EVERY,
                    and_(last_hour <= now, StoryResult.last_read_at < last_hour),
                ),
            )
            .order_by(StoryResult.expires_at)
        )
        return list((await self._session.execute(statement)).scalars())

    async def store(
        self,
        chat_id: int,
        media_id: str,
        values: Mapping[str, int],
        note: str | None,
        now: datetime,
    ) -> None:
        """SET the figures just read; a metric left out (no data yet) keeps its last value."""
        figures = {name: values[name] for name in STORY_METRICS if name in values}
        await self._session.execute(
            update(StoryResult)
            .where(StoryResult.chat_id == chat_id, StoryResult.ig_media_id == media_id)
            .values(**figures, insights_note=note, last_read_at=now)
        )

    async def tie_autoposts(self, chat_id: int) -> int:
        """Tie each Story our Auto Post published to its history row, by media id."""
        return await self._rows_changed(
            text(
                """
                UPDATE story_results s SET history_id = h.id
                FROM posting_history h
                WHERE s.chat_id = :chat_id AND s.history_id IS NULL
                  AND h.chat_id = s.chat_id AND h.instagram_media_id = s.ig_media_id
                  AND h.status = :posted
                  AND NOT EXISTS (SELECT 1 FROM story_results t WHERE t.history_id = h.id)
                """
            ).bindparams(chat_id=chat_id, posted=HistoryStatus.POSTED.value)
        )

    async def tie_manual_presses(
        self, chat_id: int, now: datetime, *, before: timedelta, after: timedelta
    ) -> int:
        """Tie ✅ Posted presses whose window has closed to the one Story in it, if one."""
        return await self._rows_changed(
            TIE_MANUAL_SQL.bindparams(
                chat_id=chat_id,
                posted=HistoryStatus.POSTED.value,
                manual=PostingMethod.TELEGRAM_MANUAL.value,
                oldest=now - STORY_LIFETIME - after - before,
                decided_before=now - after,
                before=before,
                after=after,
            )
        )
