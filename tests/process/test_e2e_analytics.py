"""End to end: Story results kept by the real process, /stats with its picture, /status with the
runway, /export, and the runway warning sent once across a lost answer and two processes."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers.bot_process import IG_TOKEN, BotProcess, command, eventually
from tests.helpers.fake_bot_api import FakeBotApi
from tests.helpers.fake_graph import FakeGraphServer
from tests.helpers.support import (
    ALICE,
    TEAM_CHAT,
    TEST_TOKEN,
    fetch_all,
    seed_chat,
    seed_decision,
    seed_media,
    seed_person,
)


@pytest.fixture
def analytics_env(instagram_env: dict[str, str]) -> dict[str, str]:
    return {
        **instagram_env,
        "STORY_RESULTS_INTERVAL_SECONDS": "0.3",
        "RUNWAY_CHECK_INTERVAL_SECONDS": "0.3",
    }


def running_low(api: FakeBotApi) -> list[Any]:
    return [call for call in api.of("sendMessage") if "running low" in call.params["text"]]


async def test_results_stats_runway_and_export_in_the_real_process(
    api: FakeBotApi,
    graph: FakeGraphServer,
    analytics_env: dict[str, str],
    session_factory: Any,
) -> None:
    # Six cakes at three a day: two days left, below the default seven-day warning.
    hour = datetime.now(UTC).hour  # a window hours away: no slot is owed while the test runs
    await seed_chat(
        session_factory,
        posts_per_day=3,
        posting_hours_start=(hour + 3) % 24,
        posting_hours_end=(hour + 6) % 24,
    )
    cakes = await seed_media(session_factory, count=6, prefix="cake", category="cakes")
    [posted] = await seed_media(session_factory, prefix="done", category="cakes")
    alice = await seed_person(session_factory, ALICE.id, ALICE.first_name, "alice")
    history = await seed_decision(session_factory, posted, "posted", alice, "Alice", hours_ago=3)
    await fetch_all(
        session_factory,
        "UPDATE posting_history SET posting_method = 'instagram_api',"
        " instagram_media_id = 'ig-media-7' WHERE id = :h RETURNING id",
        h=history,
    )
    await seed_decision(session_factory, cakes[0], "skipped", alice, "Alice", hours_ago=2)
    # The Auto Post's Story went live three hours ago; its insights are there to read.
    graph.state.add_story("ig-media-7", datetime.now(UTC) - timedelta(hours=3), 100)
    # The first warning's answer is lost after Telegram took it.
    api.lose_answer("sendMessage")

    first = BotProcess(analytics_env)
    second = BotProcess(analytics_env)
    try:
        await first.start()
        await second.start()

        async def warned() -> list[Any]:
            return running_low(api)

        [warning] = await eventually(warned, timeout=60)
        assert "2 days left at 3 a day" in warning.params["text"]

        async def kept() -> list[Any]:
            return await fetch_all(
                session_factory,
                "SELECT reach, history_id FROM story_results WHERE reach IS NOT NULL",
            )

        [result] = await eventually(kept, timeout=60)
        assert result.history_id == history and result.reach >= 300
        await asyncio.sleep(2)  # several more runway rounds in both processes
        assert len(running_low(api)) == 1
        assert await second.stop() == 0

        api.push_update(message=command(TEAM_CHAT, "/status"))
        api.push_update(message=command(TEAM_CHAT, "/stats 90"))
        api.push_update(message=command(TEAM_CHAT, "/export"))
        await api.wait_for("sendDocument")
        await api.wait_for("sendPhoto")
        replies = [call.params["text"] for call in api.of("sendMessage")]
        [status] = [text for text in replies if "Runway" in text and "Library" in text]
        assert "📆 Runway: 2 days left at 3 a day" in status
        [stats] = [text for text in replies if text.startswith("📊")]
        assert "Last 90 days" in stats
        assert "Alice: 7d 1/1/0" in stats
        assert f"cakes: 2, 50% skipped, 0% rejected, reach {result.reach}" in stats
        assert "Reach by hour" in stats and "Never sent: 5" in stats
        [photo] = api.of("sendPhoto")
        [png] = photo.files.values()
        assert png.startswith(b"\x89PNG")
        [document] = api.of("sendDocument")
        assert document.result["document"]["file_name"].endswith(".csv")
        [upload] = document.files.values()  # aiogram names the part attach://<random>
        rows = list(csv.DictReader(io.StringIO(upload.decode("utf-8-sig"))))
        assert [(row["status"], row["reach"]) for row in rows] == [
            ("posted", str(result.reach)),
            ("skipped", ""),
        ]
        assert len(running_low(api)) == 1
        assert await first.stop() == 0
        for process in (first, second):
            assert "Traceback" not in process.log
            assert IG_TOKEN not in process.log and TEST_TOKEN not in process.log
        assert "runway.warning_unknown" in first.log + second.log
    finally:
        for process in (first, second):
            await process.kill_and_show_log()
