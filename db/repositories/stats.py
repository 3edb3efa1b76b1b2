"""Read models for /stats, /status' runway and /export: aggregates over history and results."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text

from db.repositories.base import Repository, copied
from db.vocabulary import STORY_METRICS

# Each active item not in flight and not locked for good (on itself or a file with
# the same hash), by category and by the day (from now) its locks run out: 0 = free now.
RELEASES_SQL = text(
    """
    WITH item AS (
        SELECT m.id, m.category,
               bool_or(l.id IS NOT NULL AND l.locked_until IS NULL) AS permanent,
               max(l.locked_until) AS until
        FROM media_items m
        LEFT JOIN media_items t ON t.chat_id = m.chat_id AND t.file_hash = m.file_hash
        LEFT JOIN media_locks l
               ON l.media_item_id = t.id AND (l.locked_until IS NULL OR l.locked_until > :now)
        WHERE m.chat_id = :chat_id AND m.is_active
          AND NOT EXISTS (SELECT 1 FROM posting_queue q WHERE q.media_item_id = m.id)
        GROUP BY m.id, m.category
    )
    SELECT category,
           CASE WHEN until IS NULL THEN 0
                ELSE ceil(extract(epoch FROM until - :now) / 86400)::int END AS day,
           count(*) AS items
    FROM item
    WHERE NOT permanent
    GROUP BY 1, 2
    """
)

PEOPLE_SQL = text(
    """
    SELECT h.acted_by_user_id AS user_id,
           u.telegram_user_id, u.username, u.first_name, u.last_name,
           max(h.acted_by_name) AS recorded_name,
           count(*) FILTER (WHERE h.status = 'posted' AND h.acted_at >= :week) AS week_posted,
           count(*) FILTER (WHERE h.status = 'skipped' AND h.acted_at >= :week) AS week_skipped,
           count(*) FILTER (WHERE h.status = 'rejected' AND h.acted_at >= :week) AS week_rejected,
           count(*) FILTER (WHERE h.status = 'posted' AND h.acted_at >= :month) AS month_posted,
           count(*) FILTER (WHERE h.status = 'skipped' AND h.acted_at >= :month) AS month_skipped,
           count(*) FILTER (WHERE h.status = 'rejected' AND h.acted_at >= :month)
               AS month_rejected,
           count(*) FILTER (WHERE h.status = 'posted') AS all_posted,
           count(*) FILTER (WHERE h.status = 'skipped') AS all_skipped,
           count(*) FILTER (WHERE h.status = 'rejected') AS all_rejected,
           count(*) FILTER (WHERE h.acted_at >= :since) AS decisions,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM h.acted_at - h.queue_created_at)
           ) FILTER (WHERE h.acted_at >= :since AND h.queue_created_at IS NOT NULL)
               AS median_seconds
    FROM posting_history h
    LEFT JOIN users u ON u.id = h.acted_by_user_id
    WHERE h.chat_id = :chat_id AND h.acted_by_user_id IS NOT NULL
      AND h.status IN ('posted', 'skipped', 'rejected')
    GROUP BY h.acted_by_user_id, u.telegram_user_id, u.username, u.first_name, u.last_name
    ORDER BY all_posted DESC, decisions DESC
    """
)

CATEGORIES_SQL = text(
    """
    SELECT m.category,
           count(*) AS decisions,
           count(*) FILTER (WHERE h.status = 'posted') AS posted,
           count(*) FILTER (WHERE h.status = 'skipped') AS skipped,
           count(*) FILTER (WHERE h.status = 'rejected') AS rejected,
           avg(s.reach) AS average_reach,
           count(s.reach) AS results
    FROM posting_history h
    JOIN media_items m ON m.id = h.media_item_id
    LEFT JOIN story_results s ON s.history_id = h.id
    WHERE h.chat_id = :chat_id AND h.acted_at >= :since
      AND h.status IN ('posted', 'skipped', 'rejected')
    GROUP BY m.category
    ORDER BY decisions DESC
    """
)

HOURS_SQL = text(
    """
    SELECT extract(isodow FROM timezone(:tz, coalesce(s.posted_at, s.first_seen_at)))::int
               AS weekday,
           extract(hour FROM timezone(:tz, coalesce(s.posted_at, s.first_seen_at)))::int AS hour,
           avg(s.reach) AS average_reach,
           count(*) AS stories
    FROM story_results s
    WHERE s.chat_id = :chat_id AND s.reach IS NOT NULL
      AND coalesce(s.posted_at, s.first_seen_at) >= :since
    GROUP BY 1, 2
    """
)

POSTS_BY_HOUR_SQL = text(
    """
    SELECT extract(isodow FROM timezone(:tz, h.acted_at))::int AS weekday,
           extract(hour FROM timezone(:tz, h.acted_at))::int AS hour,
           count(*) AS posts
    FROM posting_history h
    WHERE h.chat_id = :chat_id AND h.status = 'posted' AND h.acted_at >= :since
    GROUP BY 1, 2
    """
)

NEVER_SENT_SQL = text(
    """
    SELECT m.file_name, count(*) OVER () AS total
    FROM media_items m
    WHERE m.chat_id = :chat_id AND m.is_active
      AND NOT EXISTS (SELECT 1 FROM posting_history h WHERE h.media_item_id = m.id)
      AND NOT EXISTS (SELECT 1 FROM posting_queue q WHERE q.media_item_id = m.id)
    ORDER BY m.created_at, m.file_name
    LIMIT :shown
    """
)

SKIPPED_OFTEN_SQL = text(
    """
    SELECT m.file_name, count(*) AS skips, count(*) OVER () AS total
    FROM posting_history h
    JOIN media_items m ON m.id = h.media_item_id
    WHERE h.chat_id = :chat_id AND h.status = 'skipped' AND m.is_active
    GROUP BY m.id, m.file_name
    HAVING count(*) >= :at_least
    ORDER BY skips DESC, m.file_name
    LIMIT :shown
    """
)

EXPORT_SQL = text(
    f"""
    SELECT h.acted_at, h.status, h.posting_method, h.acted_by_name, u.telegram_user_id,
           m.file_path, m.category, h.queue_created_at, h.scheduled_for,
           coalesce(h.instagram_media_id, s.ig_media_id) AS instagram_media_id,
           s.posted_at AS story_posted_at, {", ".join(f"s.{metric}" for metric in STORY_METRICS)},
           s.insights_note, s.last_read_at AS insights_read_at, h.error_message
    FROM posting_history h
    JOIN media_items m ON m.id = h.media_item_id
    LEFT JOIN users u ON u.id = h.acted_by_user_id
    LEFT JOIN story_results s ON s.history_id = h.id
    WHERE h.chat_id = :chat_id
    ORDER BY h.acted_at, h.id
    """
)


@dataclass(frozen=True, slots=True)
class PersonRow:
    user_id: uuid.UUID
    telegram_user_id: int | None
    username: str | None
    first_name: str | None
    last_name: str | None
    recorded_name: str | None
    week: tuple[int, int, int]
    month: tuple[int, int, int]
    total: tuple[int, int, int]
    decisions: int
    median_seconds: float | None


@dataclass(frozen=True, slots=True)
class CategoryRow:
    category: str | None
    decisions: int
    posted: int
    skipped: int
    rejected: int
    average_reach: float | None
    results: int


@dataclass(frozen=True, slots=True)
class HourCell:
    weekday: int  # 1 = Monday … 7 = Sunday
    hour: int
    value: float  # average reach, or posts where no results are kept
    count: int


@dataclass(frozen=True, slots=True)
class NamedItems:
    total: int
    shown: list[str]  # file names, the first few of `total`
    times: list[int] = field(default_factory=list)  # how often each shown one was skipped


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


class StatsRepository(Repository):
    async def releases(self, chat_id: int, now: datetime) -> list[tuple[str | None, int, int]]:
        """(category, day its locks run out or 0, items) for the items that can come back."""
        rows = await self._session.execute(RELEASES_SQL, {"chat_id": chat_id, "now": now})
        return [(row.category, max(0, int(row.day)), int(row.items)) for row in rows]

    async def people(
        self, chat_id: int, *, week: datetime, month: datetime, since: datetime
    ) -> list[PersonRow]:
        """Counts and the median time to decide, per person, keyed by their user row."""
        rows = await self._session.execute(
            PEOPLE_SQL, {"chat_id": chat_id, "week": week, "month": month, "since": since}
        )
        return [
            copied(
                PersonRow,
                row,
                week=(row.week_posted, row.week_skipped, row.week_rejected),
                month=(row.month_posted, row.month_skipped, row.month_rejected),
                total=(row.all_posted, row.all_skipped, row.all_rejected),
                median_seconds=_float_or_none(row.median_seconds),
            )
            for row in rows
        ]

    async def categories(self, chat_id: int, since: datetime) -> list[CategoryRow]:
        rows = await self._session.execute(CATEGORIES_SQL, {"chat_id": chat_id, "since": since})
        return [
            copied(CategoryRow, row, average_reach=_float_or_none(row.average_reach))
            for row in rows
        ]

    async def reach_by_hour(self, chat_id: int, since: datetime, timezone: str) -> list[HourCell]:
        """Average reach of the kept Story results per local weekday and hour."""
        rows = await self._session.execute(
            HOURS_SQL, {"chat_id": chat_id, "since": since, "tz": timezone}
        )
        return [
            HourCell(row.weekday, row.hour, float(row.average_reach), row.stories) for row in rows
        ]

    async def posts_by_hour(self, chat_id: int, since: datetime, timezone: str) -> list[HourCell]:
        """Posts per local weekday and hour (the picture when no results are kept)."""
        rows = await self._session.execute(
            POSTS_BY_HOUR_SQL, {"chat_id": chat_id, "since": since, "tz": timezone}
        )
        return [HourCell(row.weekday, row.hour, float(row.posts), row.posts) for row in rows]

    async def never_sent(self, chat_id: int, shown: int) -> NamedItems:
        rows = list(
            await self._session.execute(NEVER_SENT_SQL, {"chat_id": chat_id, "shown": shown})
        )
        return NamedItems(rows[0].total if rows else 0, [row.file_name for row in rows])

    async def skipped_often(self, chat_id: int, at_least: int, shown: int) -> NamedItems:
        rows = list(
            await self._session.execute(
                SKIPPED_OFTEN_SQL, {"chat_id": chat_id, "at_least": at_least, "shown": shown}
            )
        )
        return NamedItems(
            rows[0].total if rows else 0,
            [row.file_name for row in rows],
            [row.skips for row in rows],
        )

    async def export_rows(self, chat_id: int) -> list[Sequence[Any]]:
        """The chat's history with its kept Story results, oldest first."""
        result = await self._session.execute(EXPORT_SQL, {"chat_id": chat_id})
        return [tuple(row) for row in result]


EXPORT_COLUMNS = (
    "acted_at",
    "status",
    "posting_method",
    "acted_by",
    "telegram_user_id",
    "file_path",
    "category",
    "queued_at",
    "scheduled_for",
    "instagram_media_id",
    "story_posted_at",
    *STORY_METRICS,
    "insights_note",
    "insights_read_at",
    "error_message",
)
