"""A throwaway embedded PostgreSQL with migrated databases, and small timing helpers."""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from db import migrate
from db.embedded import EmbeddedPostgres
from db.engine import EngineOptions, create_engine, create_session_factory


@dataclass
class Cluster:
    embedded: EmbeddedPostgres
    admin_url: str

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def dsn(self, database: str = "postgres") -> str:
        url = make_url(self.url_for(database)).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    async def fresh_database(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(self.dsn())
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        engine = create_engine(EngineOptions(url=self.url_for(name), pool_size=1, max_overflow=0))
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()
        return name

    @asynccontextmanager
    async def fresh_engine(
        self, *, pool_size: int, command_timeout_seconds: float = 120
    ) -> AsyncIterator[BenchDatabase]:
        """A fresh migrated database with an engine of its own, disposed on the way out."""
        name = await self.fresh_database()
        engine = create_engine(
            EngineOptions(
                url=self.url_for(name),
                pool_size=pool_size,
                max_overflow=0,
                command_timeout_seconds=command_timeout_seconds,
            )
        )
        try:
            yield BenchDatabase(name=name, engine=engine, sessions=create_session_factory(engine))
        finally:
            await engine.dispose()


@dataclass
class BenchDatabase:
    """One benchmark's own database: its name, engine and sessions."""

    name: str
    engine: Any
    sessions: Any

    async def analyze(self) -> None:
        """Planner statistics for the rows just seeded, as autovacuum would gather later."""
        async with self.engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()


@asynccontextmanager
async def cluster() -> AsyncIterator[Cluster]:
    embedded = EmbeddedPostgres(
        Path(tempfile.mkdtemp(prefix="sqbench")) / "data", delete_on_stop=True
    )
    admin_url = await asyncio.to_thread(embedded.start)
    try:
        yield Cluster(embedded=embedded, admin_url=admin_url)
    finally:
        await asyncio.to_thread(embedded.stop)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


@dataclass
class LoopMonitor:
    """Measures the longest time the event loop was blocked (a late 5 ms sleep)."""

    interval: float = 0.005
    longest: float = 0.0
    samples: list[float] = field(default_factory=list)
    longest_gc: float = 0.0
    _task: asyncio.Task[None] | None = None
    _gc_started: float = 0.0

    def _gc_hook(self, phase: str, info: dict[str, int]) -> None:
        # Garbage collection pauses the loop too; reported apart from I/O.
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.longest_gc = max(self.longest_gc, time.perf_counter() - self._gc_started)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval)
            lag = loop.time() - started - self.interval
            self.longest = max(self.longest, lag)
            self.samples.append(lag)

    def start(self) -> None:
        gc.callbacks.append(self._gc_hook)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._gc_hook in gc.callbacks:
            gc.callbacks.remove(self._gc_hook)
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    def summary(self) -> str:
        return (
            f"loop stall max {ms(self.longest)} (longest GC pause {ms(self.longest_gc)}),"
            f" p99 {ms(percentile(self.samples, 0.99))}"
        )


def timer() -> float:
    return time.perf_counter()


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


@dataclass
class BenchApp:
    """The real dispatcher and services on `options`' engine; Telegram faked at the session."""

    engine: Any
    sessions: Any
    telegram: Any
    bot: Any
    services: Any
    dispatcher: Any

    @classmethod
    def build(cls, options: EngineOptions, chat_id: int, token: str) -> BenchApp:
        from bot.app import build_app
        from bot.config import Settings
        from bot.database import Database
        from db.engine import create_session_factory
        from tests.helpers.fake_telegram_session import RecordingSession

        data_dir = Path(tempfile.mkdtemp(prefix="sqbench"))
        settings = Settings(
            _env_file=None,
            bot_token=token,
            telegram_chat_id=chat_id,  # type: ignore[call-arg]
            data_dir=data_dir,
            media_dir=data_dir,
        )
        engine = create_engine(options)
        sessions = create_session_factory(engine)
        telegram = RecordingSession()
        built = build_app(settings, Database(engine=engine, sessions=sessions), session=telegram)
        return cls(
            engine=engine,
            sessions=sessions,
            telegram=telegram,
            bot=built.bot,
            services=built.services,
            dispatcher=built.dispatcher,
        )

    @staticmethod
    def plain_bot(token: str) -> Any:
        from aiogram import Bot

        return Bot(token)

    async def close(self) -> None:
        await self.services.tasks.drain(10)
        await self.engine.dispose()
