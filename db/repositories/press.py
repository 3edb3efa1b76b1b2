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
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased

from bot.domain import Press
from db.models import PostingQueueItem
from db.repositories.base import Repository
from db.repositories.queue import abandoned_autopost
from db.vocabulary import HistoryStatus, InteractionKind, PostingMethod, QueueStatus, Verdict

Word = TypeVar("Word", bound=StrEnum)

# Tests (and the server's logs, pg_stat_statements) know each statement by its leading comment.
PRESS_STATEMENT_NAME = "storyqueue:press"
PRESS_STATE_STATEMENT_NAME = "storyqueue:press_state"

# The queue row as the statement names it, and the Auto Post hold rule rendered against it.
_Q = aliased(PostingQueueItem, name="q")
_ABANDONED_AUTOPOST = abandoned_autopost(_Q).compile(
    dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
    compile_kwargs={"literal_binds": True},
)

_RECORD_PRESS = text(
    f"""-- {PRESS_STATEMENT_NAME}
WITH params AS (
    SELECT given.*,
           given.status = '{Verdict.POSTED.value}' AS posted,
           given.status = '{Verdict.REJECTED.value}' AS rejected
    FROM (
        SELECT CAST(:queue_id AS uuid) AS queue_id,
               CAST(:chat_id AS bigint) AS chat_id,
               CAST(:status AS varchar) AS status,
               CAST(:lock_reason AS varchar) AS lock_reason,
               CAST(:posting_method AS varchar) AS posting_method,
               CAST(:instagram_media_id AS text) AS instagram_media_id,
               CAST(:telegram_user_id AS bigint) AS telegram_user_id,
               CAST(:username AS varchar) AS username,
               CAST(:first_name AS varchar) AS first_name,
               CAST(:last_name AS varchar) AS last_name,
               CAST(:acted_by_name AS text) AS acted_by_name,
               CAST(:telegram_message_id AS bigint) AS telegram_message_id,
               CAST(:interaction AS text) AS interaction,
               CAST(:context AS jsonb) AS context,
               CAST(:completes_autopost AS boolean) AS completes_autopost
    ) AS given
),
claimed AS (
    DELETE FROM posting_queue q
    USING params
    WHERE q.id = params.queue_id AND q.chat_id = params.chat_id
      AND CASE WHEN params.completes_autopost THEN q.status = '{QueueStatus.PUBLISHING.value}'
               -- An Auto Post in progress holds the item, unless it is abandoned.
               ELSE q.status <> '{QueueStatus.PUBLISHING.value}' OR ({_ABANDONED_AUTOPOST})
          END
    RETURNING q.id, q.media_item_id, q.chat_id, q.created_at, q.scheduled_for
),
presser AS (
    INSERT INTO users AS u (telegram_user_id, username, first_name, last_name, total_posts)
    SELECT params.telegram_user_id, params.username, params.first_name, params.last_name,
           CASE WHEN params.posted THEN (SELECT count(*) FROM claimed)::int ELSE 0 END
    FROM params
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
        acted_by_user_id, acted_by_name, queue_created_at, scheduled_for, instagram_media_id,
        caption_pending_message_id
    )
    SELECT c.id, c.media_item_id, c.chat_id, params.status, true, params.posting_method,
           p.id, params.acted_by_name, c.created_at, c.scheduled_for, params.instagram_media_id,
           -- The Auto Post's caption still shows its progress: settled after the edit.
           CASE WHEN params.completes_autopost THEN params.telegram_message_id END
    FROM claimed c CROSS JOIN presser p CROSS JOIN params
    RETURNING id, media_item_id, acted_at
),
counted AS (
    UPDATE media_items m
    SET times_posted = m.times_posted + 1, last_posted_at = h.acted_at, updated_at = now()
    FROM history h, params
    WHERE m.id = h.media_item_id AND params.posted
),
lock AS (
    -- Posted and skipped items rest for the chat's TTL; a rejection locks for good.
    INSERT INTO media_locks (media_item_id, reason, locked_until, created_by_user_id)
    SELECT h.media_item_id, params.lock_reason,
           CASE WHEN params.rejected THEN NULL
                ELSE h.acted_at + make_interval(days => CASE WHEN params.posted
                                                             THEN s.repost_ttl_days
                                                             ELSE s.skip_ttl_days END)
           END,
           p.id
    FROM history h
    CROSS JOIN presser p
    CROSS JOIN params
    JOIN chat_settings s ON s.telegram_chat_id = params.chat_id
    ON CONFLICT (media_item_id) WHERE locked_until IS NULL DO NOTHING
),
replaced_ttl_locks AS (
    DELETE FROM media_locks l
    USING history h, params
    WHERE params.rejected
      AND l.media_item_id = h.media_item_id
      AND l.locked_until IS NOT NULL
),
logged AS (
    INSERT INTO user_interactions (user_id, chat_id, kind, name, context, telegram_message_id)
    SELECT p.id, params.chat_id, '{InteractionKind.CALLBACK.value}', params.interaction,
           params.context || jsonb_build_object('recorded', EXISTS (SELECT 1 FROM history)),
           params.telegram_message_id
    FROM presser p CROSS JOIN params
)
SELECT h.id AS history_id, h.media_item_id, h.acted_at FROM history h
"""
)

_PRESS_STATE = text(
    f"""-- {PRESS_STATE_STATEMENT_NAME}
WITH params AS (SELECT CAST(:queue_id AS uuid) AS queue_id)
SELECT q.chat_id AS queue_chat_id, q.status AS queue_status,
       h.chat_id AS history_chat_id,
       h.status, h.acted_by_name, h.posting_method, h.instagram_media_id, h.acted_at,
       u.telegram_user_id AS acted_by_telegram_id
FROM params
LEFT JOIN posting_queue q ON q.id = params.queue_id
LEFT JOIN posting_history h ON h.queue_item_id = params.queue_id
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
    queue_status: QueueStatus | None
    history_status: HistoryStatus | None
    history_chat_id: int | None
    acted_by_name: str | None
    acted_by_telegram_id: int | None
    posting_method: PostingMethod | None
    instagram_media_id: str | None


def _maybe(vocabulary: type[Word], value: str | None) -> Word | None:
    return None if value is None else vocabulary(value)


class PressRepository(Repository):
    async def record(self, press: Press) -> PressRecord | None:
        """Claim the queue row and write every effect; None when the row was not ours to claim."""
        presser = press.presser
        params = {
            "queue_id": press.queue_id,
            "chat_id": press.chat_id,
            "status": press.status.history_status,
            "lock_reason": press.status.lock_reason,
            "telegram_user_id": presser.telegram_user_id,
            "username": presser.username,
            "first_name": presser.first_name,
            "last_name": presser.last_name,
            "acted_by_name": presser.display_name,
            "posting_method": press.posting_method,
            "instagram_media_id": press.instagram_media_id,
            "telegram_message_id": press.telegram_message_id,
            "interaction": f"press:{press.status}",
            "context": json.dumps({"queue_item_id": str(press.queue_id)}),
            "completes_autopost": press.completes_autopost,
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
            queue_status=_maybe(QueueStatus, row.queue_status),
            history_status=_maybe(HistoryStatus, row.status),
            history_chat_id=row.history_chat_id,
            acted_by_name=row.acted_by_name,
            acted_by_telegram_id=row.acted_by_telegram_id,
            posting_method=_maybe(PostingMethod, row.posting_method),
            instagram_media_id=row.instagram_media_id,
        )
