"""The database itself rejects what would break the invariants of docs/architecture.md §2."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

CHAT = -100123


async def _seed(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO chat_settings (telegram_chat_id) VALUES (:chat)"), {"chat": CHAT}
        )
        media_id = (
            await connection.execute(
                text(
                    "INSERT INTO media_items (chat_id, file_path, file_name, file_size, file_hash,"
                    " media_kind, mime_type) VALUES (:chat, 'a/x.jpg', 'x.jpg', 1, :hash,"
                    " 'photo', 'image/jpeg') RETURNING id"
                ),
                {"chat": CHAT, "hash": "0" * 64},
            )
        ).scalar_one()
    return {"chat": CHAT, "media": media_id}


async def _execute(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(sql), params)


HISTORY = (
    "INSERT INTO posting_history (queue_item_id, media_item_id, chat_id, status, success)"
    " VALUES (:queue, :media, :chat, :status, :success)"
)


async def test_second_history_row_for_one_queue_item(engine: AsyncEngine) -> None:
    seed = await _seed(engine)
    queue_id = uuid.uuid4()
    row = {**seed, "queue": queue_id, "status": "posted", "success": True}
    await _execute(engine, HISTORY, row)
    with pytest.raises(IntegrityError, match="uq_posting_history_queue_item_id"):
        await _execute(engine, HISTORY, {**row, "status": "skipped"})
    # Rows without a queue item (failed sends of the past) are not limited.
    failed = {**seed, "queue": None, "status": "failed", "success": False}
    await _execute(engine, HISTORY, failed)
    await _execute(engine, HISTORY, failed)


async def test_second_permanent_lock(engine: AsyncEngine) -> None:
    seed = await _seed(engine)
    lock = "INSERT INTO media_locks (media_item_id, reason, locked_until) VALUES (:media, :r, {})"
    await _execute(engine, lock.format("NULL"), {**seed, "r": "rejected"})
    with pytest.raises(IntegrityError, match="uq_media_locks_permanent"):
        await _execute(engine, lock.format("NULL"), {**seed, "r": "manual"})
    # TTL locks may coexist with it.
    await _execute(engine, lock.format("now() + interval '1 day'"), {**seed, "r": "skip"})


async def test_second_queue_row_for_one_media_item(engine: AsyncEngine) -> None:
    seed = await _seed(engine)
    queue = "INSERT INTO posting_queue (media_item_id, chat_id) VALUES (:media, :chat)"
    await _execute(engine, queue, seed)
    with pytest.raises(IntegrityError, match="uq_posting_queue_media_item_id"):
        await _execute(engine, queue, seed)


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        (
            "INSERT INTO posting_queue (media_item_id, chat_id, status)"
            " VALUES (:media, :chat, 'lost')",
            "ck_posting_queue_status",
        ),
        (
            "INSERT INTO posting_history (media_item_id, chat_id, status, success)"
            " VALUES (:media, :chat, 'liked', true)",
            "ck_posting_history_status",
        ),
        (
            "INSERT INTO posting_history (media_item_id, chat_id, status, success)"
            " VALUES (:media, :chat, 'failed', true)",
            "ck_posting_history_success_matches_status",
        ),
        (
            "INSERT INTO media_locks (media_item_id, reason) VALUES (:media, 'because')",
            "ck_media_locks_reason",
        ),
        ("UPDATE chat_settings SET posts_per_day = 51", "ck_chat_settings_posts_per_day"),
        ("UPDATE chat_settings SET posting_hours_end = 24", "ck_chat_settings_posting_hours_end"),
        ("UPDATE media_items SET media_kind = 'audio'", "ck_media_items_media_kind"),
        (
            "INSERT INTO users (telegram_user_id, role) VALUES (1, 'owner')",
            "ck_users_role",
        ),
        (
            "INSERT INTO user_interactions (chat_id, kind, name) VALUES (:chat, 'poke', 'x')",
            "ck_user_interactions_kind",
        ),
        (
            "INSERT INTO posting_queue (media_item_id, chat_id) VALUES (gen_random_uuid(), :chat)",
            "fk_posting_queue_media_item_id_media_items",
        ),
        (
            "INSERT INTO media_items (chat_id, file_path, file_name, file_size, file_hash,"
            " media_kind, mime_type) VALUES (42, 'b', 'b', 1, 'h', 'photo', 'image/jpeg')",
            "fk_media_items_chat_id_chat_settings",
        ),
    ],
)
async def test_invalid_values_are_rejected(engine: AsyncEngine, sql: str, constraint: str) -> None:
    seed = await _seed(engine)
    with pytest.raises(IntegrityError, match=constraint):
        await _execute(engine, sql, seed)
