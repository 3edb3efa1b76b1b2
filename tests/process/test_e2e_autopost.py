"""End to end: SIGTERM during a slow Auto Post, then a restart; one Story, one history row."""

from __future__ import annotations

import signal
from typing import Any

from tests.helpers.bot_process import (
    IG_TOKEN,
    BotProcess,
    autopost_button,
    eventually,
    first_send_recorded,
    press,
)
from tests.helpers.fake_bot_api import FakeBotApi
from tests.helpers.fake_graph import FakeGraphServer
from tests.helpers.support import TEST_TOKEN, fetch_all


async def test_sigterm_during_a_slow_auto_post_then_restart(
    api: FakeBotApi,
    graph: FakeGraphServer,
    autopost_env: dict[str, str],
    library: list[Any],
    session_factory: Any,
) -> None:
    graph.state.publish_faults = ["hang_after"]  # publishes, then never answers
    first = BotProcess(autopost_env)
    second = BotProcess(autopost_env)
    try:
        await first.start()
        send = await first_send_recorded(api, session_factory)
        press(api, send.result, autopost_button(send.result))

        async def published() -> bool:
            return graph.state.published.is_set()

        await eventually(published)
        await first.signal(signal.SIGTERM)
        assert await first.wait() == 0

        [row] = await fetch_all(
            session_factory,
            "SELECT status, claimed_at, instagram_publish_requested_at FROM posting_queue",
        )
        assert (row.status, row.claimed_at) == ("publishing", None)
        assert row.instagram_publish_requested_at is not None
        checking = api.of("editMessageCaption")[-1].params
        assert checking["caption"].endswith("🔎 Checking with Instagram…")

        await second.start()  # its first sweep asks Instagram: PUBLISHED

        async def recorded() -> list[Any]:
            return await fetch_all(
                session_factory,
                "SELECT status, posting_method, instagram_media_id, acted_by_name"
                " FROM posting_history",
            )

        history = await eventually(recorded)
        assert [tuple(r) for r in history] == [("posted", "instagram_api", "ig-media-1", "Alice")]

        async def caption_final() -> bool:
            edits = api.of("editMessageCaption")
            return edits[-1].params["caption"].endswith("✅ Posted to Instagram by Alice")

        await eventually(caption_final)
        # The old message's 🤖, pressed again, says what happened and creates nothing.
        press(api, send.result, autopost_button(send.result))

        async def answered() -> bool:
            answers = api.of("answerCallbackQuery")
            return bool(answers) and answers[-1].params.get("text") == "✅ Already posted by Alice"

        await eventually(answered)
        assert graph.state.creates == 1
        assert graph.state.publish_calls == ["container-1"]
        assert len(graph.state.stories) == 1
        assert await second.stop() == 0
        for process in (first, second):
            assert "Traceback" not in process.log
            assert IG_TOKEN not in process.log and TEST_TOKEN not in process.log
    finally:
        for process in (first, second):
            await process.kill_and_show_log()
