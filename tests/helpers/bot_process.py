"""The real `python -m bot` commands as child processes, and what the process tests send them."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from tests.helpers.fake_bot_api import Call, FakeBotApi
from tests.helpers.support import ALICE, Person, fetch_all, seed_chat


class BotProcess:
    """`python -m bot run` in a child process with `env`; its output lines are kept in `lines`."""

    def __init__(self, env: dict[str, str], cwd: Path | None = None) -> None:
        self._env = env
        # Where it runs: relative paths in env (MEDIA_DIR=media) are read from here.
        self._cwd = cwd
        self.process: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            env=self._env,
            cwd=self._cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode(errors="replace").rstrip())

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def stop(self) -> int:
        await self.signal(signal.SIGTERM)
        return await self.wait()

    async def kill_and_show_log(self) -> None:
        """Kill the process if a test left it running; print its log (pytest shows it on failure)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.wait()
        print(self.log[-6000:])


async def run_bot_command(
    env: dict[str, str], *arguments: str, cwd: Path | None = None, timeout: float = 120
) -> tuple[int, str, str]:
    """The real `python -m bot <arguments>` run to its end: exit code, standard output and error."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *arguments,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def index(env: dict[str, str], *arguments: str, cwd: Path | None = None) -> str:
    """The real `python -m bot index …`; its output, after asserting it succeeded."""
    code, out, err = await run_bot_command(env, "index", *arguments, cwd=cwd)
    assert code == 0, err
    return out


async def every_slot_at_once(session_factory: Any, *chats: int) -> None:
    """A 24-hour window with 50 slots: a slot is owed as soon as the bot starts."""
    for chat in chats:
        await seed_chat(
            session_factory, chat, posting_hours_start=0, posting_hours_end=0, posts_per_day=50
        )


async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Polls `check` every 0.1 s until it returns something true; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.1)


async def first_send_recorded(api: FakeBotApi, session_factory: Any) -> Call:
    """The first sendPhoto, once the bot has recorded its item as sent (a press before races it)."""
    [send] = await api.wait_for("sendPhoto")

    async def marked_sent() -> bool:
        rows = await fetch_all(session_factory, "SELECT status FROM posting_queue")
        return [row.status for row in rows] == ["sent"]

    await eventually(marked_sent)
    return send


def press(api: FakeBotApi, message: dict[str, Any], data: str) -> int:
    return api.push_update(
        callback_query={
            "id": f"cb{len(api.updates)}",
            "from": ALICE.bot_api(),
            "chat_instance": "ci",
            "message": message,
            "data": data,
        }
    )


def posted_button(message: dict[str, Any]) -> str:
    return message["reply_markup"]["inline_keyboard"][0][0]["callback_data"]


def command(chat_id: int, text: str, sender: Person = ALICE) -> dict[str, Any]:
    return {
        "message_id": 900,
        "date": int(time.time()),
        "from": sender.bot_api(),
        "text": text,
        "chat": {"id": chat_id, "type": "supergroup", "title": "team"},
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
    }


def sent_file(call: Any) -> str:
    """The file name in a sent caption (the fake returns the HTML it was sent)."""
    meta = str(call.params["caption"]).split("📄", 1)[1]
    return meta.split("<code>", 1)[1].split("</code>", 1)[0]


async def owe_a_slot_again(session_factory: Any) -> None:
    """As if the next slot had come: every chat owes one again."""
    async with session_factory() as session, session.begin():
        await session.execute(text("UPDATE chat_settings SET last_post_sent_at = NULL"))


IG_USER = "1789"
IG_TOKEN = "EAAGe2e-secret-token"


def autopost_button(message: dict[str, Any]) -> str:
    return str(message["reply_markup"]["inline_keyboard"][2][0]["callback_data"])
