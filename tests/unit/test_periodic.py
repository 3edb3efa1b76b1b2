"""The background loops' shared shape (scheduler ticks, token care, the Auto Post sweep)."""

from __future__ import annotations

import asyncio

import pytest
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


def _rounds_until_stopped(
    interval_seconds: float, stop: asyncio.Event
) -> tuple[asyncio.Task[None], asyncio.Event]:
    """`every` with a round that only says it ran: (the loop, set once a round ran)."""
    ran = asyncio.Event()

    async def round_() -> None:
        ran.set()

    log = structlog.get_logger("t")
    return asyncio.create_task(every(interval_seconds, stop, round_, log=log, failed="t")), ran


async def test_stop_ends_the_wait_between_rounds() -> None:
    stop = asyncio.Event()
    loop, started = _rounds_until_stopped(3600, stop)
    await asyncio.wait_for(started.wait(), 5)
    stop.set()
    await asyncio.wait_for(loop, 5)  # not an hour


async def test_a_cancel_that_arrives_as_stop_is_set_still_cancels_the_loop() -> None:
    """Shutdown sets `stop`, then cancels: the loop ends cancelled, never goes on to drain."""
    stop = asyncio.Event()
    loop, started = _rounds_until_stopped(60, stop)
    await started.wait()
    await asyncio.sleep(0)  # now waiting out the interval
    stop.set()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
