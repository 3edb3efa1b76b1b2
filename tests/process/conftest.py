"""The process tests' fixtures: the environment `python -m bot run` starts with, and its library."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.bot_process import IG_TOKEN, IG_USER, BotProcess
from tests.helpers.fake_bot_api import FakeBotApi
from tests.helpers.fake_graph import FakeGraphServer, GraphState
from tests.helpers.support import JPEG, TEAM_CHAT, TEST_TOKEN, seed_chat, seed_media


@pytest.fixture
def bot_env(api: FakeBotApi, database_url: str, tmp_path: Path) -> dict[str, str]:
    media = tmp_path / "media"
    (media / "cat").mkdir(parents=True)
    for index in range(3):
        (media / "cat" / f"item{index}.jpg").write_bytes(JPEG)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DB_", "LOG_"))},
        "BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_CHAT_ID": str(TEAM_CHAT),
        "TELEGRAM_API_URL": api.url,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "MEDIA_DIR": str(media),
        "SCHEDULER_INTERVAL_SECONDS": "0.3",
        "LOG_FORMAT": "json",
        "SHUTDOWN_GRACE_SECONDS": "10",
        # The files are a few bytes behind a JPEG header: Auto Post hands them on as they are.
        "MEDIA_PREPARATION": "false",
    }


@pytest.fixture
async def library(session_factory: Any) -> list[Any]:
    # A 24-hour window with 50 slots: a slot is owed as soon as the bot starts.
    await seed_chat(session_factory, posting_hours_start=0, posting_hours_end=0, posts_per_day=50)
    return await seed_media(session_factory, count=3)


@pytest.fixture
async def bot(bot_env: dict[str, str], request: pytest.FixtureRequest) -> AsyncIterator[BotProcess]:
    process = BotProcess(bot_env)
    yield process
    await process.kill_and_show_log()


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphServer]:
    server = FakeGraphServer(GraphState(IG_USER))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def instagram_env(
    bot_env: dict[str, str],
    graph: FakeGraphServer,
) -> dict[str, str]:
    """The process tests' environment, with one Instagram account on the fake Graph server."""
    return {
        **bot_env,
        "INSTAGRAM_USER_ID": IG_USER,
        "INSTAGRAM_ACCESS_TOKEN": IG_TOKEN,
        "INSTAGRAM_GRAPH_URL": graph.url,
        "MEDIA_PUBLIC_BASE_URL": "https://cdn.test/media",
    }


@pytest.fixture
def autopost_env(instagram_env: dict[str, str]) -> dict[str, str]:
    return {
        **instagram_env,
        "INSTAGRAM_POLL_INTERVAL_SECONDS": "0.05",
        "AUTOPOST_SWEEP_INTERVAL_SECONDS": "0.5",
        "SHUTDOWN_GRACE_SECONDS": "1",
    }
