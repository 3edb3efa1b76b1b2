"""Fixtures of the database tests that several modules share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.services.team import TeamService
from db.engine import EngineOptions, create_engine, create_session_factory
from tests.helpers.fake_bot_api import FakeBotApi

# respx's Graph for the Instagram care tests; a module with its own `graph` overrides it.
from tests.helpers.instagram_process import graph  # noqa: F401
from tests.helpers.pgproxy import PgProxy, ProxiedTeam
from tests.helpers.support import TEAM_CHAT, TEST_TOKEN, seed_chat


@pytest.fixture
async def proxied_team(proxy: PgProxy, database_url: str) -> AsyncIterator[ProxiedTeam]:
    """A TeamService whose connections go through the proxy that can cut a COMMIT's reply."""
    engine = create_engine(
        EngineOptions(url=proxy.url(make_url(database_url).database or ""), pool_size=2)
    )
    sessions = create_session_factory(engine)
    await seed_chat(sessions)
    try:
        yield TeamService(sessions), proxy, sessions
    finally:
        await engine.dispose()


@pytest.fixture
def healthy(api: FakeBotApi, database_url: str, tmp_path: Path) -> Settings:
    """Settings under which `python -m bot check` passes: the fake Bot API, this test's database."""
    media = tmp_path / "media"
    (media / "cat").mkdir(parents=True)
    (media / "cat" / "item0.jpg").write_bytes(b"\xff\xd8\xff")
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        bot_token=TEST_TOKEN,
        telegram_chat_id=TEAM_CHAT,
        telegram_api_url=api.url,
        database_url=database_url,
        data_dir=tmp_path / "data",
        media_dir=media,
    )
