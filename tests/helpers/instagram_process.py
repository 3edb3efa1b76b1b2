"""A bot process in the test's own event loop with one Instagram account, on respx's Graph."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import respx
from aiogram.types import Update

from bot.app import build_app
from bot.config import Settings
from bot.database import Database
from db.engine import EngineOptions, create_engine, create_session_factory
from tests.helpers.fake_telegram_session import RecordingSession
from tests.helpers.support import TEST_TOKEN, Clock, TestApp, seed_chat

IG_GRAPH = "https://graph.instagram.com/v21.0"
# The documented refresh: no version in the path (the token goes in the query).
IG_REFRESH = "https://graph.instagram.com/refresh_access_token"
FB_GRAPH = "https://graph.facebook.com/v21.0"
IG_USER = "1789"
# Not token-shaped on purpose: only the redactor's learned secrets can hide them.
OLD_TOKEN = "old-secret-" + "o" * 40
NEW_TOKEN = "new-secret-" + "n" * 40
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ig_settings(base: Settings, graph_url: str = IG_GRAPH, **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            **base.model_dump(),
            "bot_token": TEST_TOKEN,
            "instagram_user_id": IG_USER,
            "instagram_access_token": OLD_TOKEN,
            "media_public_base_url": "https://cdn.test/media/",
            "instagram_graph_url": graph_url,
            "instagram_publish_timeout_seconds": 0.5,
            "instagram_poll_interval_seconds": 0.01,
            **extra,
        }
    )


class Process(TestApp):
    """One bot process over its own engine; `feed` also waits for the tasks an update started."""

    __test__ = False

    async def feed(self, update: Update) -> None:
        await super().feed(update)
        await self.services.tasks.drain(5)


@asynccontextmanager
async def process(
    settings: Settings, url: str, clock: Clock, on_secret: Any = None
) -> AsyncIterator[Process]:
    engine = create_engine(EngineOptions(url=url, pool_size=3, max_overflow=2))
    sessions = create_session_factory(engine)
    telegram = RecordingSession()
    built = build_app(
        settings,
        Database(engine=engine, sessions=sessions),
        session=telegram,
        clock=clock,
        on_secret=on_secret or (lambda secret: None),
    )
    try:
        yield Process(settings, built.bot, built.dispatcher, built.services, sessions, telegram)
    finally:
        await built.services.tasks.drain(5)
        await built.services.close()
        await engine.dispose()


@asynccontextmanager
async def account_process(
    settings: Settings, url: str, clock: Clock, on_secret: Any = None
) -> AsyncIterator[Process]:
    """A process whose team chat is seeded and whose configured account is synced to it."""
    async with process(settings, url, clock, on_secret) as bot:
        await seed_chat(bot.sessions)
        await bot.services.instagram_accounts.sync()
        yield bot


@pytest.fixture
def graph() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router
