"""A byte-level proxy in front of PostgreSQL's unix socket, for counting and for faults.

It counts round trips (a client message sent after the server last replied) and
can cut a connection right after the server has answered a matching message,
so the client never hears an answer the server already acted on.

It can also make a connection go silent (half-open, as after a NAT or load
balancer timeout): from a matching message on, nothing is forwarded either way
and nothing is closed. The client hears nothing; the server keeps its end (and
whatever its session holds) until it gives up on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.services.team import TeamService
from db.engine import EngineOptions, create_engine

SOCKET_NAME = ".s.PGSQL.5432"


class PgProxy:
    def __init__(
        self,
        upstream_socket_dir: Path,
        listen_dir: Path,
        upstream_tcp: tuple[str, int] | None = None,
    ) -> None:
        self.upstream = upstream_socket_dir / SOCKET_NAME
        self.upstream_tcp = upstream_tcp  # e.g. a pooler on 127.0.0.1, instead of the socket
        self.listen_dir = listen_dir
        self.round_trips = 0
        self._cut_after_reply: Callable[[bytes], bool] | None = None
        self.cuts = 0
        self._silence_on: Callable[[bytes], bool] | None = None
        self._silence_delivers = True
        self._silent_fraction = 0.0
        self._silent_match: Callable[[bytes], bool] = lambda data: True
        self._silent_at_random_delivers: bool | None = True
        self._cut_fraction = 0.0
        self._cut_match: Callable[[bytes], bool] = lambda data: True
        self._rng = random.Random(12)
        self.silenced = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def socket_dir(self) -> Path:
        return self.listen_dir

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.listen_dir}"

    def cut_after_reply_to(self, predicate: Callable[[bytes], bool] | None) -> None:
        """The next client message matching `predicate` reaches the server; its reply does not."""
        self._cut_after_reply = predicate

    def cut_at_random(
        self, fraction: float, match: Callable[[bytes], bool] = lambda data: True
    ) -> None:
        """Each client message matching `match` has its reply cut with this probability."""
        self._cut_fraction = fraction
        self._cut_match = match

    def _cuts(self, data: bytes) -> bool:
        predicate = self._cut_after_reply
        if predicate is not None and predicate(data):
            self._cut_after_reply = None
            return True
        return (
            self._cut_fraction > 0
            and self._cut_match(data)
            and self._rng.random() < self._cut_fraction
        )

    def go_silent_on(
        self, predicate: Callable[[bytes], bool] | None, *, delivered: bool = True
    ) -> None:
        """The next client message matching `predicate` silences its connection (half-open).

        `delivered`: the message reaches the server first (it acts; the answer is
        lost), else it is lost on the way.
        """
        self._silence_on = predicate
        self._silence_delivers = delivered

    def go_silent_at_random(
        self,
        fraction: float,
        match: Callable[[bytes], bool] = lambda data: True,
        *,
        delivered: bool | None = True,
    ) -> None:
        """Each client message matching `match` silences its connection with this probability.

        `delivered` None: a coin decides, per message, whether it reaches the server.
        """
        self._silent_fraction = fraction
        self._silent_match = match
        self._silent_at_random_delivers = delivered

    def _silences(self, data: bytes) -> tuple[bool, bool]:
        """(silence the connection now, deliver this last message first)."""
        predicate = self._silence_on
        if predicate is not None and predicate(data):
            self._silence_on = None
            return True, self._silence_delivers
        if (
            self._silent_fraction > 0
            and self._silent_match(data)
            and self._rng.random() < self._silent_fraction
        ):
            delivered = self._silent_at_random_delivers
            return True, self._rng.random() < 0.5 if delivered is None else delivered
        return False, True

    async def start(self) -> None:
        self.listen_dir.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.start_unix_server(
            self._handle, path=str(self.listen_dir / SOCKET_NAME)
        )
        # Reachable by a pooler running as another user (PgBouncer refuses root).
        self.listen_dir.chmod(0o755)
        (self.listen_dir / SOCKET_NAME).chmod(0o777)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.upstream_tcp is not None:
            server_r, server_w = await asyncio.open_connection(*self.upstream_tcp)
        else:
            server_r, server_w = await asyncio.open_unix_connection(str(self.upstream))
        self._writers.update({client_w, server_w})
        state = {"awaiting_reply": False, "cut": False, "silent": False}

        async def client_to_server() -> None:
            while data := await client_r.read(65536):
                if state["silent"]:
                    continue
                if not state["awaiting_reply"]:
                    self.round_trips += 1
                    state["awaiting_reply"] = True
                if self._cuts(data):
                    state["cut"] = True
                silence, deliver = self._silences(data)
                if silence:
                    state["silent"] = True
                    self.silenced += 1
                    if not deliver:
                        continue
                server_w.write(data)
                await server_w.drain()

        async def server_to_client() -> None:
            while data := await server_r.read(65536):
                if state["cut"]:
                    self.cuts += 1  # the server answered; the client never hears it
                    return
                if state["silent"]:
                    continue  # swallowed; the server's writes still succeed
                state["awaiting_reply"] = False
                client_w.write(data)
                await client_w.drain()

        pumps = [
            asyncio.ensure_future(client_to_server()),
            asyncio.ensure_future(server_to_client()),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            if state["silent"]:
                # Half-open: the client's goodbye never reaches the server, which
                # keeps its end until it closes it itself.
                await pumps[1]
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in (client_w, server_w):
                self._writers.discard(writer)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()


class ThreadedPgProxy:
    """The proxy on its own event loop in a thread, so it never stalls the measured loop."""

    def __init__(self, proxy: PgProxy) -> None:
        self.proxy = proxy
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def round_trips(self) -> int:
        return self.proxy.round_trips

    @property
    def socket_dir(self) -> Path:
        return self.proxy.socket_dir

    def url(self, database: str) -> str:
        return self.proxy.url(database)

    def start(self) -> None:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self.proxy.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.proxy.close())
            loop.close()

        self._thread = threading.Thread(target=serve, name="pgproxy", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def commit_after(marker: bytes) -> Callable[[bytes], bool]:
    """Matches the first COMMIT sent after a statement containing `marker`."""
    seen = False

    def predicate(data: bytes) -> bool:
        nonlocal seen
        seen = seen or marker in data
        return seen and b"COMMIT" in data and marker not in data

    return predicate


class ProxiedEngines:
    """Opens engines to this test's database at `url` (the proxy's); the fixture disposes them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[AsyncEngine] = []

    def open(self, *, pool_size: int = 2, **options: Any) -> AsyncEngine:
        engine = create_engine(
            EngineOptions(
                url=self.url,
                pool_size=pool_size,
                max_overflow=0,
                command_timeout_seconds=5,
                **options,
            )
        )
        self.opened.append(engine)
        return engine


# A TeamService through the proxy (the `proxied_team` fixture), its proxy and its sessions.
ProxiedTeam = tuple[TeamService, PgProxy, async_sessionmaker[AsyncSession]]
