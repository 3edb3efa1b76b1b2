"""Work that must finish even when the handler that started it is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

logger = structlog.get_logger(__name__)
T = TypeVar("T")


class TaskTracker:
    """Keeps the database writes of presses alive through shutdown, then drains them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run_to_completion(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await `coroutine`; if the caller is cancelled, it still finishes (and is drained)."""
        return await asyncio.shield(self.spawn(coroutine))

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for tracked work; what is still running after that is cancelled."""
        if not self._tasks:
            return
        logger.debug("tasks.draining", pending=len(self._tasks), timeout=timeout)
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            logger.error("tasks.abandoned", count=len(pending))
            await asyncio.gather(*pending, return_exceptions=True)
