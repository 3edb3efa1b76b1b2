"""The background loops' one shape: a round at once, then one every N seconds until stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog


async def every(
    interval_seconds: float,
    stop: asyncio.Event,
    round_: Callable[[], Awaitable[object]],
    *,
    log: structlog.stdlib.BoundLogger,
    failed: str,
) -> None:
    """Run `round_` until `stop` is set; a failing round is logged as `failed` and the loop goes on.

    The wait between rounds ends early when `stop` is set, so shutdown never waits
    out an interval.
    """
    while not stop.is_set():
        try:
            await round_()
        except Exception:
            log.exception(failed)
        await wait_for_stop(stop, interval_seconds)


async def wait_for_stop(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile; a cancellation always propagates.

    Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that arrives
    as the event is set (shutdown sets `stop`, then cancels), and the loop then
    waited forever for a send that would never be answered.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
