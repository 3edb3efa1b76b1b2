"""The press: the whole unit of work of a queue button in one SQL statement.

A press touches six tables. Doing it as one statement of data-modifying CTEs
keeps the press at one round trip (autocommit, statement cache warm) while the
database still decides who wins: the DELETE of the queue row serialises two
presses on one item, in one process or many.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db.repositories.users import TelegramIdentity

# An Auto Post claim older than this was abandoned (the process died mid-publish).
AUTOPOST_STALE_SECONDS = 600

_RECORD_PRESS = text(
    """
WITH claimed AS (
    DELETE FROM posting_queue
    WHERE id = CAST(:queue_id AS uuid) AND chat_id = CAST(:chat_id AS bigint)
      AND CASE WHEN CAST(:completes_autopost AS boolean) THEN status = 'publishing'
               -- An Auto Post in progress holds the item; an abandoned one does not.
               ELSE status <> 'publishing'
                    OR claimed_at < now() - make_interval(secs => CAST(:stale_seconds AS int))
          END
    RETURNING id, media_item_id, chat_id, created_at, scheduled_for
),
presser AS (
    INSERT INTO users AS u (telegram_user_id, username, first_name, last_name, total_posts)
    VALUES (
        CAST(:telegram_user_id AS bigint), CAST(:username AS varchar),
        CAST(:first_name AS varchar), CAST(:last_name AS varchar),
        CASE WHEN CAST(:status AS varchar) = 'posted'
             THEN (SELECT count(*) FROM claimed)::int ELSE 0 END
    )
    ON CONFLICT (telegram_user_id) DO UPDATE
        SET username = EXCLUDED.username,
            first_name = EXCLUDED.first_name,
            last_name = EXCLUDED.last_name,
            last_seen_at = now(),
            total_posts = u.total_posts + EXCLUDED.total_posts
    RETURNING id
),
history AS (
    INSERT INTO posting_history (
        queue_item_id, media_item_id, chat_id, status, success, posting_method,
        acted_by_user_id, acted_by_name, queue_created_at, scheduled_for, instagram_media_id
    )
    SELECT c.id, c.media_item_id, c.chat_id, CAST(:status AS varchar), true,
           CAST(:posting_method AS varchar), p.id, CAST(:acted_by_name AS text),
           c.created_at, c.scheduled_for, CAST(:instagram_media_id AS text)
    FROM claimed c CROSS JOIN presser p
    RETURNING id, media_item_id, acted_at
),
counted AS (
    UPDATE media_items m
    SET times_posted = m.times_posted + 1, last_posted_at = h.acted_at, updated_at = now()
    FROM history h
    WHERE m.id = h.media_item_id AND CAST(:status AS varchar) = 'posted'
),
ttl_lock AS (
    INSERT INTO media_locks (media_item_id, reason, locked_until, created_by_user_id)
    SELECT h.media_item_id,
           CASE WHEN CAST(:status AS varchar) = 'posted' THEN 'recent_post' ELSE 'skip' END,
           h.acted_at + make_interval(days => CASE WHEN CAST(:status AS varchar) = 'posted'
                                                   THEN s.repost_ttl_days
                                                   ELSE s.skip_ttl_days END),
           p.id
    FROM history h
    CROSS JOIN presser p
    JOIN chat_settings s ON s.telegram_chat_id = CAST(:chat_id AS bigint)
    WHERE CAST(:status AS varchar) IN ('posted', 'skipped')
),
replaced_ttl_locks AS (
    DELETE FROM media_locks l
    USING history h
    WHERE CAST(:status AS varchar) = 'rejected'
      AND l.media_item_id = h.media_item_id
      AND l.locked_until IS NOT NULL
),
permanent_lock AS (
    INSERT INTO media_locks (media_item_id, reason, locked_until, created_by_user_id)
    SELECT h.media_item_id, 'rejected', NULL, p.id
    FROM history h CROSS JOIN presser p
    WHERE CAST(:status AS varchar) = 'rejected'
    ON CONFLICT (media_item_id) WHERE locked_until IS NULL DO NOTHING
),
logged AS (
    INSERT INTO user_interactions (user_id, chat_id, kind, name, context, telegram_message_id)
    SELECT p.id, CAST(:chat_id AS bigint), 'callback', CAST(:interaction AS text),
           CAST(:context AS jsonb)
               || jsonb_build_object('recorded', EXISTS (SELECT 1 FROM history)),
           CAST(:telegram_message_id AS bigint)
    FROM presser p
)
SELECT h.id AS history_id, h.media_item_id, h.acted_at FROM history h
"""
)

_PRESS_STATE = text(
    """
SELECT q.chat_id AS queue_chat_id, q.status AS queue_status,
       h.chat_id AS history_chat_id,
       h.status, h.acted_by_name, h.posting_method, h.instagram_media_id, h.acted_at,
       u.telegram_user_id AS acted_by_telegram_id
FROM (SELECT 1) AS one
LEFT JOIN posting_queue q ON q.id = CAST(:queue_id AS uuid)
LEFT JOIN posting_history h ON h.queue_item_id = CAST(:queue_id AS uuid)
LEFT JOIN users u ON u.id = h.acted_by_user_id
"""
)


@dataclass(frozen=True, slots=True)
class PressRecord:
    """The history row a press wrote."""

    history_id: uuid.UUID
    media_item_id: uuid.UUID
    acted_at: datetime


@dataclass(frozen=True, slots=True)
class PressState:
    """What the database says about a queue item now."""

    queue_chat_id: int | None
    queue_status: str | None
    history_status: str | None
    history_chat_id: int | None
    acted_by_name: str | None
    acted_by_telegram_id: int | None
    posting_method: str | None
    instagram_media_id: str | None


class PressRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(
        self,
        *,
        queue_id: uuid.UUID,
        chat_id: int,
        status: str,
        presser: TelegramIdentity,
        posting_method: str = "telegram_manual",
        instagram_media_id: str | None = None,
        telegram_message_id: int | None = None,
        interaction: str,
        context: dict[str, Any] | None = None,
        completes_autopost: bool = False,
    ) -> PressRecord | None:
        """Claim the queue row and write every effect; None when the row was not ours to claim."""
        params = {
            "queue_id": queue_id,
            "chat_id": chat_id,
            "status": status,
            "telegram_user_id": presser.telegram_user_id,
            "username": presser.username,
            "first_name": presser.first_name,
            "last_name": presser.last_name,
            "acted_by_name": presser.display_name,
            "posting_method": posting_method,
            "instagram_media_id": instagram_media_id,
            "telegram_message_id": telegram_message_id,
            "interaction": interaction,
            "context": json.dumps({"queue_item_id": str(queue_id), **(context or {})}),
            "completes_autopost": completes_autopost,
            "stale_seconds": AUTOPOST_STALE_SECONDS,
        }
        row = (await self._session.execute(_RECORD_PRESS, params)).one_or_none()
        if row is None:
            return None
        return PressRecord(
            history_id=row.history_id, media_item_id=row.media_item_id, acted_at=row.acted_at
        )

    async def state(self, queue_id: uuid.UUID) -> PressState:
        row = (await self._session.execute(_PRESS_STATE, {"queue_id": queue_id})).one()
        return PressState(
            queue_chat_id=row.queue_chat_id,
            queue_status=row.queue_status,
            history_status=row.status,
            history_chat_id=row.history_chat_id,
            acted_by_name=row.acted_by_name,
            acted_by_telegram_id=row.acted_by_telegram_id,
            posting_method=row.posting_method,
            instagram_media_id=row.instagram_media_id,
        )
