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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
