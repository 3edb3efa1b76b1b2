"""The background loops' shared shape (scheduler ticks, token care, the Auto Post sweep)."""

from __future__ import annotations

import asyncio

import structlog
from structlog.testing import capture_logs

from bot.services.periodic import every


async def test_a_failing_round_is_logged_and_the_loop_goes_on() -> None:
    stop = asyncio.Event()
    rounds = 0

    async def round_() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise RuntimeError("boom")
        if rounds == 3:
            stop.set()

    with capture_logs() as logs:
        await asyncio.wait_for(
            every(0.01, stop, round_, log=structlog.get_logger("t"), failed="t.failed"), 5
        )
    assert rounds == 3
    assert [entry["event"] for entry in logs] == ["t.failed"]


async def test_stop_ends_the_wait_between_rounds() -> None:
    stop = asyncio.Event()
    started = asyncio.Event()

    async def round_() -> None:
        started.set()

    loop = asyncio.create_task(
        every(3600, stop, round_, log=structlog.get_logger("t"), failed="t.failed")
    )
    await asyncio.wait_for(started.wait(), 5)
    stop.set()
    await asyncio.wait_for(loop, 5)  # not an hour
