"""The embedded server keeps its data between runs and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

SCRIPT = textwrap.dedent(
    """
    import asyncio
    from bot.config import load_settings
    from bot.database import open_database
    from db.embedded import exit_on_signals

    exit_on_signals()

    async def main():
        async with open_database(load_settings(_env_file=None)):
            print("ready", flush=True)
            await asyncio.sleep(120)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    """
)


def _postmaster_pid(data: Path) -> int | None:
    pid_file = data / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return None
    return int(pid_file.read_text().splitlines()[0])


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigterm_stops_the_embedded_server_and_data_survives(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATA_DIR"] = str(data)
    for _ in range(2):
        process = subprocess.Popen(
            [sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        server_pid = _postmaster_pid(data)
        assert server_pid is not None and psutil.pid_exists(server_pid)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert _postmaster_pid(data) is None
        assert not _running(server_pid)
    assert (data / "postgres" / "PG_VERSION").exists()
