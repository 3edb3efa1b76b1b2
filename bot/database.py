"""Opening the database: DATABASE_URL, or an embedded server owned by this process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from db.embedded import EmbeddedPostgres
from db.engine import EngineOptions, create_engine, create_session_factory


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


def engine_options(settings: Settings, url: str) -> EngineOptions:
    """Every engine option comes from its setting: `pool_size` from DB_POOL_SIZE, and so on."""
    options = {
        option.name: getattr(settings, f"db_{option.name}")
        for option in fields(EngineOptions)
        if option.name != "url"
    }
    return EngineOptions(url=url, **options)


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """The engine for DATABASE_URL, or for an embedded server started (and stopped) here."""
    embedded: EmbeddedPostgres | None = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        url = await asyncio.to_thread(embedded.start)
    try:
        engine = create_engine(engine_options(settings, url))
        try:
            yield Database(engine=engine, sessions=create_session_factory(engine))
        finally:
            await engine.dispose()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
