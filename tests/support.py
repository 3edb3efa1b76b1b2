"""Helpers shared by the tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from db.embedded import EmbeddedPostgres
from db.models import MediaItem, PostingQueueItem
from db.repositories import ChatSettingsRepository


@dataclass
class PostgresHandle:
    admin_url: str
    embedded: EmbeddedPostgres | None = None

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)


@dataclass
class TestApp:
    """Everything a dispatcher-level test touches."""

    __test__ = False

    settings: Any
    bot: Any
    dispatcher: Any
    services: Any
    sessions: Any
    telegram: Any

    async def feed(self, update: Any) -> None:
        await self.dispatcher.feed_update(self.bot, update)


TEAM_CHAT = -1001000
OTHER_CHAT = -1002000
TEST_TOKEN = "123456:" + "A" * 35


async def seed_chat(session_factory: Any, chat_id: int = TEAM_CHAT, **values: Any) -> None:
    async with session_factory() as session, session.begin():
        await ChatSettingsRepository(session).ensure(chat_id, "team")
        if values:
            await ChatSettingsRepository(session).update(chat_id, **values)


async def seed_media(
    session_factory: Any,
    chat_id: int = TEAM_CHAT,
    *,
    count: int = 1,
    prefix: str = "item",
    file_hash: str | None = None,
    **values: Any,
) -> list[uuid.UUID]:
    ids = []
    async with session_factory() as session, session.begin():
        for index in range(count):
            fields = {
                "chat_id": chat_id,
                "file_path": f"cat/{prefix}{index}.jpg",
                "file_name": f"{prefix}{index}.jpg",
                "file_size": 100,
                "file_hash": file_hash or uuid.uuid4().hex * 2,
                "media_kind": "photo",
                "mime_type": "image/jpeg",
                "category": "cat",
                **values,
            }
            media = MediaItem(**fields)
            session.add(media)
            await session.flush()
            ids.append(media.id)
    return ids


async def seed_queue_item(
    session_factory: Any, media_id: uuid.UUID, chat_id: int = TEAM_CHAT, message_id: int = 500
) -> uuid.UUID:
    async with session_factory() as session, session.begin():
        item = PostingQueueItem(
            media_item_id=media_id,
            chat_id=chat_id,
            status="sent",
            telegram_message_id=message_id,
        )
        session.add(item)
        await session.flush()
        return item.id


async def fetch_all(session_factory: Any, sql: str, **params: Any) -> list[Any]:
    async with session_factory() as session, session.begin():
        return list((await session.execute(text(sql), params)).all())
