"""End to end with the real `index` and `run` processes: the README's layouts and bad files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.helpers.bot_process import (
    BotProcess,
    eventually,
    every_slot_at_once,
    index,
    owe_a_slot_again,
    sent_file,
)
from tests.helpers.fake_bot_api import Call, FakeBotApi
from tests.helpers.support import JPEG, OTHER_CHAT, TEAM_CHAT, execute, fetch_all

REFUSE_MARKER = b"telegram-cannot-process-this"


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


async def test_the_readmes_several_chats_layout_sends_from_each_chats_own_folder(
    api: FakeBotApi,
    bot_env: dict[str, str],
    session_factory: Any,
    tmp_path: Path,
) -> None:
    """MEDIA_DIR=media; `index media/bakery --chat A` and `index media/flowers --chat B`."""
    home = tmp_path / "deployment"
    files = {
        "media/bakery/cakes/lemon.jpg": JPEG + b"lemon",
        "media/bakery/bread/rye.jpg": JPEG + b"rye",
        "media/flowers/roses/red.jpg": JPEG + b"red rose",
    }
    for relative, content in files.items():
        _write(home / relative, content)
    env = {**bot_env, "MEDIA_DIR": "media", "TELEGRAM_CHAT_ID": f"{TEAM_CHAT},{OTHER_CHAT}"}

    await index(env, "media/bakery", "--chat", str(TEAM_CHAT), cwd=home)
    await index(env, "media/flowers", "--chat", str(OTHER_CHAT), cwd=home)
    rows = await fetch_all(
        session_factory, "SELECT chat_id, file_path, category FROM media_items ORDER BY file_path"
    )
    assert [tuple(row) for row in rows] == [
        (TEAM_CHAT, "bakery/bread/rye.jpg", "bread"),
        (TEAM_CHAT, "bakery/cakes/lemon.jpg", "cakes"),
        (OTHER_CHAT, "flowers/roses/red.jpg", "roses"),
    ]
    await every_slot_at_once(session_factory, TEAM_CHAT, OTHER_CHAT)

    process = BotProcess(env, cwd=home)
    await process.start()
    try:
        await api.wait_for("sendPhoto", count=2)
        [to_a] = api.of("sendPhoto", TEAM_CHAT)
        [to_b] = api.of("sendPhoto", OTHER_CHAT)
        assert to_a.result is not None and to_b.result is not None
        assert sent_file(to_a) in {"lemon.jpg", "rye.jpg"} and sent_file(to_b) == "red.jpg"
        # The bytes uploaded are the chat's own file's.
        assert to_b.content == files["media/flowers/roses/red.jpg"]
        assert to_a.content in {files["media/bakery/cakes/lemon.jpg"], JPEG + b"rye"}
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    assert "media file not found" not in process.log and "Traceback" not in process.log


def _good_sends(api: FakeBotApi) -> list[Call]:
    return [call for call in api.of("sendPhoto") if call.result is not None]


async def test_a_refused_file_and_a_deleted_one_are_set_aside_and_every_slot_sends_a_good_one(
    api: FakeBotApi,
    bot_env: dict[str, str],
    session_factory: Any,
    tmp_path: Path,
) -> None:
    library = tmp_path / "library"
    for name in ("good0", "good1", "good2"):
        _write(library / "cat" / f"{name}.jpg", JPEG + name.encode())
    _write(library / "cat" / "refused.jpg", JPEG + REFUSE_MARKER)
    _write(library / "cat" / "gone.jpg", JPEG + b"gone")
    env = {**bot_env, "MEDIA_DIR": str(library)}
    await index(env)
    (library / "cat" / "gone.jpg").unlink()  # deleted after indexing
    api.refuse_content(REFUSE_MARKER)
    await every_slot_at_once(session_factory, TEAM_CHAT)
    # The bad files come first in the selection, so the first slot meets both.
    await execute(
        session_factory, "UPDATE media_items SET times_posted = 1 WHERE file_name LIKE 'good%'"
    )

    process = BotProcess(env)
    await process.start()
    try:
        for slot in range(1, 4):
            if slot > 1:
                await owe_a_slot_again(session_factory)

            async def sent_good(count: int = slot) -> bool:
                return len(_good_sends(api)) >= count

            await eventually(sent_good)
        await asyncio.sleep(1.0)  # more ticks, no slot due: nothing more goes out
        good = _good_sends(api)
        assert sorted(sent_file(call) for call in good) == ["good0.jpg", "good1.jpg", "good2.jpg"]

        # The refused file was tried once; the deleted one never reached Telegram.
        refused = [call for call in api.of("sendPhoto") if REFUSE_MARKER in call.content]
        assert len(refused) == 1 and refused[0].result is None
        assert len(api.of("sendPhoto")) <= 4
        notices = [call for call in api.of("sendMessage") if "Set aside" in call.params["text"]]
        assert len(notices) == 2
        texts = " ".join(call.params["text"] for call in notices)
        assert "cat/refused.jpg" in texts and "IMAGE_PROCESS_FAILED" in texts
        assert "cat/gone.jpg" in texts and "not found" in texts
        aside = await fetch_all(
            session_factory,
            "SELECT file_name FROM media_items WHERE set_aside_at IS NOT NULL ORDER BY 1",
        )
        assert [row.file_name for row in aside] == ["gone.jpg", "refused.jpg"]

        # Replaced and indexed again: it goes out at a later slot.
        _write(library / "cat" / "refused.jpg", JPEG + b"a fixed version of the file")
        await index(env)
        await owe_a_slot_again(session_factory)

        async def fixed_sent() -> bool:
            return any(sent_file(call) == "refused.jpg" for call in _good_sends(api))

        await eventually(fixed_sent)
        # No third notice: the fixed file went out, nothing else was set aside.
        assert len([c for c in api.of("sendMessage") if "Set aside" in c.params["text"]]) == 2
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()
    assert "Traceback" not in process.log
