"""media_items: the indexed library."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Text,
    Uuid,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import aliased

from db.models import MediaItem, MediaLock, PostingQueueItem
from db.repositories.base import Repository, rows_table


def _active_lock(now: datetime | None) -> Any:
    moment = now if now is not None else func.now()
    return or_(MediaLock.locked_until.is_(None), MediaLock.locked_until > moment)


def eligible_query(
    chat_id: int | ColumnElement[int], now: datetime | None = None
) -> Select[MediaItem]:
    """docs/architecture.md §5: active, not set aside, this chat's, unlocked, and neither
    it nor a hash twin locked or in flight."""
    twin = aliased(MediaItem)
    locked_twin = (
        select(twin.id)
        .join(MediaLock, MediaLock.media_item_id == twin.id)
        .where(
            twin.chat_id == MediaItem.chat_id,
            twin.file_hash == MediaItem.file_hash,
            _active_lock(now),
        )
    )
    # Any queue row (sending, sent, publishing) of the item itself or of a twin.
    in_flight = aliased(MediaItem)
    queued_twin = (
        select(PostingQueueItem.id)
        .join(in_flight, in_flight.id == PostingQueueItem.media_item_id)
        .where(
            PostingQueueItem.chat_id == MediaItem.chat_id,
            in_flight.file_hash == MediaItem.file_hash,
        )
    )
    return (
        select(MediaItem)
        .where(
            MediaItem.chat_id == chat_id,
            MediaItem.is_active,
            MediaItem.set_aside_at.is_(None),
            ~exists(queued_twin),
            ~exists(locked_twin),
        )
        .order_by(
            MediaItem.last_posted_at.asc().nulls_first(),
            MediaItem.times_posted.asc(),
            MediaItem.id,
        )
    )


class MediaRepository(Repository):
    async def get(self, media_id: uuid.UUID) -> MediaItem | None:
        return await self._session.get(MediaItem, media_id)

    async def next_eligible(self, chat_id: int, now: datetime | None = None) -> MediaItem | None:
        statement = eligible_query(chat_id, now).limit(1)
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def next_eligible_many(
        self, chat_ids: Sequence[int], now: datetime | None = None
    ) -> dict[int, MediaItem]:
        """Each chat's `next_eligible`, for many chats in one statement (a lateral join)."""
        if not chat_ids:
            return {}
        due = (
            func.unnest(literal(list(chat_ids), ARRAY(BigInteger)))
            .table_valued("chat_id")
            .render_derived(name="due")
        )
        pick = eligible_query(due.c.chat_id, now).limit(1).lateral("pick")
        picked = aliased(MediaItem, pick)
        statement = select(picked).select_from(due).join(pick, true())
        return {
            media.chat_id: media for media in (await self._session.execute(statement)).scalars()
        }

    async def get_many(self, media_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, MediaItem]:
        statement = select(MediaItem).where(MediaItem.id.in_(list(media_ids)))
        return {media.id: media for media in (await self._session.execute(statement)).scalars()}

    async def count_eligible(self, chat_id: int, now: datetime | None = None) -> int:
        inner = eligible_query(chat_id, now).order_by(None).with_only_columns(MediaItem.id)
        statement = select(func.count()).select_from(inner.subquery())
        return (await self._session.execute(statement)).scalar_one()

    async def library_counts(self, chat_id: int) -> tuple[int, int]:
        """(active items, active items with an active lock of their own)."""
        active = select(func.count()).where(MediaItem.chat_id == chat_id, MediaItem.is_active)
        total = (await self._session.execute(active)).scalar_one()
        locked = select(func.count()).where(
            MediaItem.chat_id == chat_id,
            MediaItem.is_active,
            exists(
                select(MediaLock.id).where(
                    MediaLock.media_item_id == MediaItem.id, _active_lock(None)
                )
            ),
        )
        return total, (await self._session.execute(locked)).scalar_one()

    async def set_aside(self, media_id: uuid.UUID, reason: str) -> datetime | None:
        """Set the item aside; its time when this call did it, None when it already was."""
        return (
            await self._session.execute(
                update(MediaItem)
                .where(MediaItem.id == media_id, MediaItem.set_aside_at.is_(None))
                # The cached file id may be what Telegram refused: a put-back item is uploaded.
                .values(
                    set_aside_at=func.now(), set_aside_reason=reason[:1000], telegram_file_id=None
                )
                .returning(MediaItem.set_aside_at)
            )
        ).scalar_one_or_none()

    async def put_back(self, media_id: uuid.UUID, chat_id: int) -> bool:
        """Make a set-aside item selectable again; False when it was not set aside."""
        changed = await self._rows_changed(
            update(MediaItem)
            .where(
                MediaItem.id == media_id,
                MediaItem.chat_id == chat_id,
                MediaItem.set_aside_at.is_not(None),
            )
            .values(set_aside_at=None, set_aside_reason=None, updated_at=func.now())
        )
        return changed > 0

    async def set_aside_items(self, chat_id: int) -> list[MediaItem]:
        """The chat's active items set aside, oldest first."""
        statement = (
            select(MediaItem)
            .where(
                MediaItem.chat_id == chat_id,
                MediaItem.is_active,
                MediaItem.set_aside_at.is_not(None),
            )
            .order_by(MediaItem.set_aside_at, MediaItem.id)
        )
        return list((await self._session.execute(statement)).scalars())

    async def set_telegram_file_id(self, media_id: uuid.UUID, file_id: str) -> None:
        await self._session.execute(
            update(MediaItem).where(MediaItem.id == media_id).values(telegram_file_id=file_id)
        )

    async def set_telegram_file_ids(self, file_ids: Sequence[tuple[uuid.UUID, str]]) -> None:
        """`set_telegram_file_id` for many (media id, file id) pairs in one statement."""
        if not file_ids:
            return
        known = rows_table("file_ids", [("media_id", Uuid()), ("file_id", Text())], file_ids)
        await self._session.execute(
            update(MediaItem)
            .where(MediaItem.id == known.c.media_id)
            .values(telegram_file_id=known.c.file_id)
        )

    async def index_snapshot(
        self, chat_id: int
    ) -> dict[str, tuple[int, datetime | None, str, bool, bool]]:
        """file_path -> (size, mtime, hash, is_active, assessed) for the indexer's change
        detection; `assessed`: index has judged whether Instagram would take it."""
        rows = await self._session.execute(
            select(
                MediaItem.file_path,
                MediaItem.file_size,
                MediaItem.file_mtime,
                MediaItem.file_hash,
                MediaItem.is_active,
                MediaItem.autopost_assessed_at.is_not(None),
            ).where(MediaItem.chat_id == chat_id)
        )
        return {row[0]: (row[1], row[2], row[3], row[4], row[5]) for row in rows}

    async def set_assessments(
        self, chat_id: int, verdicts: Sequence[tuple[str, str | None]]
    ) -> None:
        """Store index's verdict (None: Instagram takes it) for unchanged files, by path."""
        if not verdicts:
            return
        judged = rows_table("judged", [("file_path", Text()), ("refusal", Text())], verdicts)
        await self._session.execute(
            update(MediaItem)
            .where(MediaItem.chat_id == chat_id, MediaItem.file_path == judged.c.file_path)
            .values(
                autopost_refusal=judged.c.refusal,
                autopost_assessed_at=func.now(),
                updated_at=func.now(),
            )
        )

    async def upsert_files(self, chat_id: int, files: Sequence[dict[str, Any]]) -> None:
        """Insert or refresh files by (chat, path); a re-found file becomes active again."""
        if not files:
            return
        statement = insert(MediaItem).values([{**item, "chat_id": chat_id} for item in files])
        statement = statement.on_conflict_do_update(
            index_elements=[MediaItem.chat_id, MediaItem.file_path],
            set_={
                "file_name": statement.excluded.file_name,
                "file_size": statement.excluded.file_size,
                "file_mtime": statement.excluded.file_mtime,
                "file_hash": statement.excluded.file_hash,
                "media_kind": statement.excluded.media_kind,
                "mime_type": statement.excluded.mime_type,
                "category": statement.excluded.category,
                "autopost_refusal": statement.excluded.autopost_refusal,
                "autopost_assessed_at": statement.excluded.autopost_assessed_at,
                "is_active": True,
                # A changed (or re-found) file gets another chance.
                "set_aside_at": None,
                "set_aside_reason": None,
                # A changed file must be uploaded again.
                "telegram_file_id": case(
                    (
                        MediaItem.file_hash == statement.excluded.file_hash,
                        MediaItem.telegram_file_id,
                    ),
                    else_=None,
                ),
                "updated_at": func.now(),
            },
        )
        await self._session.execute(statement)

    async def move(self, chat_id: int, old_path: str, new: dict[str, Any]) -> None:
        """A file moved or renamed (same hash): keep its row, and so its history."""
        await self._session.execute(
            update(MediaItem)
            .where(MediaItem.chat_id == chat_id, MediaItem.file_path == old_path)
            .values(
                **new,
                is_active=True,
                set_aside_at=None,
                set_aside_reason=None,
                updated_at=func.now(),
            )
        )

    async def deactivate(self, chat_id: int, paths: Sequence[str]) -> int:
        if not paths:
            return 0
        return await self._rows_changed(
            update(MediaItem)
            .where(
                MediaItem.chat_id == chat_id, MediaItem.file_path.in_(paths), MediaItem.is_active
            )
            .values(is_active=False, updated_at=func.now())
        )
