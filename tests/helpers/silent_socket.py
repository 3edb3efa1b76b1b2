"""Presses and transactions whose sockets go silent (half-open), for direct and pooled runs."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.domain import Press
from bot.services.press import OutcomeKind, PressService
from db import migrate
from db.errors import DatabaseUnavailableError
from db.vocabulary import Verdict
from tests.helpers.pgproxy import PgProxy
from tests.helpers.support import (
    ALICE,
    TEAM_CHAT,
    fetch_all,
)

# A press must be recorded by its own retry within this, the user never pressing again.
RECORDED_WITHIN_SECONDS = 15.0


@dataclass(frozen=True)
class SilentRun:
    presses: int
    silenced: int
    recorded: int
    needed_a_repeat: int
    longest_seconds: float


async def apply_session_defaults(engine: AsyncEngine) -> None:
    """Re-run migration 0003: a database cloned from a template lacks per-database role settings."""
    await migrate.downgrade(engine, "0002")
    await migrate.upgrade(engine)


async def presses_on_silent_sockets(
    sessions: async_sessionmaker[AsyncSession],
    proxy: PgProxy,
    queue_ids: list[uuid.UUID],
    *,
    delivered: bool,
) -> SilentRun:
    """Each item's first press statement silences its socket; every press runs at once.

    `delivered`: the statement reached the server (it ran; its answer is lost),
    else it was lost on the way.
    """
    pending = {str(queue_id).encode() for queue_id in queue_ids}

    def first_press_statement(data: bytes) -> bool:
        # The press's Bind carries its parameters, the queue id among them.
        for marker in list(pending):
            if marker in data and b"press:" in data:
                pending.discard(marker)
                return True
        return False

    silenced_before = proxy.silenced
    proxy.go_silent_at_random(1.0, first_press_statement, delivered=delivered)
    service = PressService(sessions)

    async def press(queue_id: uuid.UUID) -> tuple[bool, float, int]:
        # One presser for all: a press that held their user row in a transaction
        # left open on a silent socket would hold up all the others.
        presser = ALICE.identity
        started = time.monotonic()
        for tries in range(1, 4):
            try:
                outcome = await service.record(Press(queue_id, TEAM_CHAT, Verdict.POSTED, presser))
            except DatabaseUnavailableError:
                continue  # "press again": the user does
            return outcome.kind is OutcomeKind.RECORDED, time.monotonic() - started, tries
        return False, time.monotonic() - started, 3

    try:
        results = await asyncio.gather(*(press(queue_id) for queue_id in queue_ids))
    finally:
        proxy.go_silent_at_random(0.0)
    rows = await fetch_all(
        sessions,
        "SELECT count(DISTINCT queue_item_id) AS items, count(*) AS rows FROM posting_history",
    )
    assert rows[0].items == rows[0].rows  # never two history rows for one item
    return SilentRun(
        presses=len(queue_ids),
        silenced=proxy.silenced - silenced_before,
        recorded=sum(recorded for recorded, _, _ in results),
        needed_a_repeat=sum(tries > 1 for _, _, tries in results),
        longest_seconds=max(seconds for _, seconds, _ in results),
    )


async def vanish_holding_the_row(dsn: str, proxy: PgProxy, queue_id: uuid.UUID) -> None:
    """A transaction locks the queue row, then its socket goes silent and its client gives up."""
    connection = await asyncpg.connect(dsn, statement_cache_size=0)
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute("SELECT 1 FROM posting_queue WHERE id = $1 FOR UPDATE", queue_id)
    proxy.go_silent_on(lambda data: True, delivered=False)
    with contextlib.suppress(TimeoutError):
        await connection.execute("SELECT 1", timeout=0.5)
    connection.terminate()  # the server never hears of it: the socket is half-open
