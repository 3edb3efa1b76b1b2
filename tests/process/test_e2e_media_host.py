# ruff: noqa: F401, F811  (fixtures imported from tests.helpers.fake_s3 and tests.test_e2e)
"""End to end: the real `index` and `run` Auto Post a real library through an S3 store (moto),
to a fake Graph API that downloads each URL and refuses what Meta refuses."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.bot_process import BotProcess, eventually, every_slot_at_once, index, press
from tests.helpers.bot_process import owe_a_slot_again as _owe_a_slot_again
from tests.helpers.bot_process import sent_file as _sent_file
from tests.helpers.fake_bot_api import Call, FakeBotApi
from tests.helpers.fake_graph import FakeGraphServer, GraphState, judge_image, judge_video
from tests.helpers.fake_s3 import STORE_URL, S3Endpoint, moto_server, s3
from tests.helpers.media_files import write_photo, write_video
from tests.helpers.support import TEAM_CHAT, TEST_TOKEN, fetch_all

IG_USER = "1789"
IG_TOKEN = "EAAGe2e-secret-token"
SENDS = ("sendPhoto", "sendVideo", "sendAnimation")


@pytest.fixture
async def fetching_graph() -> AsyncIterator[FakeGraphServer]:
    server = FakeGraphServer(GraphState(IG_USER, fetch_media=True))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def store_env(
    bot_env: dict[str, str], fetching_graph: FakeGraphServer, s3: S3Endpoint
) -> dict[str, str]:
    """The process tests' environment with Auto Post through the store, polled fast."""
    env = {k: v for k, v in bot_env.items() if not k.startswith("AWS_")}
    return {
        **env,
        **s3.env,
        "INSTAGRAM_USER_ID": IG_USER,
        "INSTAGRAM_ACCESS_TOKEN": IG_TOKEN,
        "INSTAGRAM_GRAPH_URL": fetching_graph.url,
        "MEDIA_PUBLIC_STORE": STORE_URL,
        "INSTAGRAM_POLL_INTERVAL_SECONDS": "0.05",
        "INSTAGRAM_PUBLISH_TIMEOUT_SECONDS": "10",
        "AUTOPOST_SWEEP_INTERVAL_SECONDS": "0.5",
    }


def _sends(api: FakeBotApi) -> list[Call]:
    return [call for method in SENDS for call in api.of(method)]


def _autopost_data(message: dict[str, Any]) -> str | None:
    for row in message.get("reply_markup", {}).get("inline_keyboard", []):
        for button in row:
            if button["text"].startswith("🤖"):
                return str(button["callback_data"])
    return None


async def _auto_post_each(
    api: FakeBotApi, graph: FakeGraphServer, session_factory: Any, count: int
) -> dict[str, str | None]:
    """Press 🤖 on each of `count` items as it arrives; file name -> its Story (None: no 🤖)."""
    stories: dict[str, str | None] = {}
    while len(stories) < count:

        async def next_send() -> Call | None:
            fresh = [call for call in _sends(api) if _sent_file(call) not in stories]
            return fresh[0] if fresh else None

        send = await eventually(next_send, timeout=60)
        name = _sent_file(send)
        data = _autopost_data(send.result)
        if data is None:
            stories[name] = None
        else:
            before = len(graph.state.stories)

            async def recorded_as_sent() -> bool:
                # Telegram's answer reaches the bot after the fake saw the call: press once
                # the bot has recorded it, as a person sees the message only then.
                sending = "SELECT 1 FROM posting_queue WHERE status = 'sending'"
                return not await fetch_all(session_factory, sending)

            await eventually(recorded_as_sent)
            press(api, send.result, data)

            async def published(before: int = before) -> bool:
                return len(graph.state.stories) > before

            await eventually(published, timeout=60)
            stories[name] = graph.state.stories[-1][0]
        await _owe_a_slot_again(session_factory)
    return stories


async def _assert_every_story_came_from_the_store(graph: FakeGraphServer, s3: S3Endpoint) -> None:
    assert len(graph.state.fetched) == len(graph.state.stories)
    for fetched in graph.state.fetched:
        assert "X-Amz-Signature=" in fetched.url
        judged = judge_video(fetched.data) if fetched.video else judge_image(fetched.data)
        assert judged is None, (fetched.url, judged)
    assert graph.state.refused == []

    async def all_removed() -> bool:
        return s3.stored_keys() == []

    await eventually(all_removed)  # each object goes once its Story is recorded


async def test_media_instagram_takes_as_they_are_go_through_the_store(
    api: FakeBotApi,
    fetching_graph: FakeGraphServer,
    store_env: dict[str, str],
    s3: S3Endpoint,
    session_factory: Any,
) -> None:
    media = Path(store_env["MEDIA_DIR"])
    for old in (media / "cat").iterdir():
        old.unlink()
    write_photo(media / "cat" / "story.jpg")
    write_video(media / "cat" / "clip.mp4", 5)
    await every_slot_at_once(session_factory, TEAM_CHAT)
    await index(store_env, str(media), "--chat", str(TEAM_CHAT))
    process = BotProcess(store_env)
    try:
        await process.start()
        stories = await _auto_post_each(api, fetching_graph, session_factory, 2)
        assert sorted(stories) == ["clip.mp4", "story.jpg"]
        assert all(stories.values())
        assert len(fetching_graph.state.stories) == fetching_graph.state.creates == 2
        await _assert_every_story_came_from_the_store(fetching_graph, s3)
        assert await process.stop() == 0
        assert "Traceback" not in process.log
        assert IG_TOKEN not in process.log and TEST_TOKEN not in process.log
        assert s3.env["AWS_SECRET_ACCESS_KEY"] not in process.log
    finally:
        await process.kill_and_show_log()


async def test_a_real_library_is_prepared_and_auto_posted_through_the_store(
    api: FakeBotApi,
    fetching_graph: FakeGraphServer,
    store_env: dict[str, str],
    s3: S3Endpoint,
    session_factory: Any,
) -> None:
    """PNG, WebP, EXIF-rotated JPEG, 4:3, GIF, 20 s MPEG-4 Part 2: one Story each; 75 s: no 🤖."""
    media = Path(store_env["MEDIA_DIR"])
    for old in (media / "cat").iterdir():
        old.unlink()
    write_photo(media / "cat" / "flat.png", "PNG")
    write_photo(media / "cat" / "web.webp", "WEBP")
    write_photo(media / "cat" / "rotated.jpg", size=(160, 90), exif_rotation=6)
    write_photo(media / "cat" / "wide.jpg", size=(400, 300))
    write_photo(media / "cat" / "moving.gif", "GIF")
    write_video(media / "cat" / "old-codec.mp4", 20, codec="mpeg4")
    write_video(media / "cat" / "long.mp4", 75)
    await every_slot_at_once(session_factory, TEAM_CHAT)

    said = await index(store_env, str(media), "--chat", str(TEAM_CHAT))
    [why] = [line for line in said.splitlines() if "long.mp4" in line]
    assert "75 s" in why and "60 s" in why, said

    process = BotProcess({**store_env, "MEDIA_PREPARATION": "true"})
    try:
        await process.start()
        stories = await _auto_post_each(api, fetching_graph, session_factory, 7)
        assert stories.pop("long.mp4") is None  # arrived without a 🤖 button
        assert sorted(stories) == sorted(
            ["flat.png", "web.webp", "rotated.jpg", "wide.jpg", "moving.gif", "old-codec.mp4"]
        )
        assert all(stories.values())
        assert len(set(stories.values())) == len(fetching_graph.state.stories) == 6
        await _assert_every_story_came_from_the_store(fetching_graph, s3)
        assert await process.stop() == 0
        assert "Traceback" not in process.log
    finally:
        await process.kill_and_show_log()
