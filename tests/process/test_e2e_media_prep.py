"""End to end: `index` says what Instagram would refuse, and the running bot sends it without 🤖."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.presentation.keyboards import QueueAction, QueueCallback

# The process tests' fixtures and helpers, shared (api is conftest's).
from tests.helpers.bot_process import BotProcess, eventually, every_slot_at_once, index, press
from tests.helpers.fake_bot_api import FakeBotApi
from tests.helpers.fake_graph import FakeGraphServer
from tests.helpers.media_samples import write_photo, write_video
from tests.helpers.support import TEAM_CHAT, execute, fetch_all

REASON = "video 75 s: over the 60 s Story limit"


def _labels(message: dict[str, Any]) -> list[str]:
    return [button["text"] for row in message["reply_markup"]["inline_keyboard"] for button in row]


async def test_a_75_s_video_arrives_without_the_robot_button_and_index_said_why(
    api: FakeBotApi,
    graph: FakeGraphServer,
    instagram_env: dict[str, str],
    session_factory: Any,
    tmp_path: Path,
) -> None:
    library = tmp_path / "library"
    write_video(library / "clips" / "long.mp4", 75, fps=2, size=(64, 112), audio=False)
    write_photo(library / "photos" / "wide.png", (400, 300), "PNG")
    env = {**instagram_env, "MEDIA_DIR": str(library)}

    said = await index(env)
    assert f"clips/long.mp4: manual only: {REASON}" in said
    assert "photos/wide.png: Auto Post after preparation (PNG to JPEG)" in said
    await every_slot_at_once(session_factory, TEAM_CHAT)
    # The video goes first: the photo counts as posted once already.
    await execute(
        session_factory, "UPDATE media_items SET times_posted = 1 WHERE file_name = 'wide.png'"
    )

    process = BotProcess(env)
    await process.start()
    try:
        [video] = await api.wait_for("sendVideo")
        assert video.result is not None
        assert "🤖 Auto Post" not in _labels(video.result)
        assert "✅ Posted" in _labels(video.result)
        assert f"✋ Manual only: {REASON}" in video.result["caption"]

        # A 🤖 from an older message of the same item: refused with the reason, nothing held.
        [row] = await fetch_all(
            session_factory,
            "SELECT q.id FROM posting_queue q JOIN media_items m ON m.id = q.media_item_id"
            " WHERE m.file_name = 'long.mp4'",
        )
        old_button = QueueCallback(action=QueueAction.AUTOPOST, queue_id=row.id).pack()
        press(api, video.result, old_button)

        async def refused() -> bool:
            return any(
                REASON in (a.params.get("text") or "") for a in api.of("answerCallbackQuery")
            )

        await eventually(refused)
        statuses = await fetch_all(
            session_factory, "SELECT status FROM posting_queue WHERE id = :id", id=row.id
        )
        assert [s.status for s in statuses] == ["sent"]
        assert graph.state.containers == {}
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    assert "Traceback" not in process.log
