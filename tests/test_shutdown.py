"""Shutdown: presses in flight and every background loop share one grace."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from bot import runner
from bot.services.tasks import TaskTracker


async def test_stuck_loops_are_cancelled_within_one_grace_not_one_each() -> None:
    grace = 0.4
    tasks = TaskTracker()
    stop = asyncio.Event()
    cancelled: list[str] = []

    async def stuck(name: str) -> None:
        try:
            await asyncio.sleep(3600)  # a loop blocked on a call that ignores `stop`
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    tasks.spawn(stuck("press"))
    background = [asyncio.create_task(stuck(name)) for name in ("scheduler", "care", "autopost")]
    app: Any = SimpleNamespace(services=SimpleNamespace(tasks=tasks))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await runner._shut_down(app, stop, background, grace)
    took = loop.time() - started
    assert stop.is_set()
    assert sorted(cancelled) == ["autopost", "care", "press", "scheduler"]
    assert all(task.done() for task in background)
    # Four graces one after another would be 1.6 s; a supervisor's SIGKILL comes first.
    assert took < 2 * grace, took


async def test_a_loop_that_died_is_logged_and_the_others_still_stop() -> None:
    from structlog.testing import capture_logs

    stop = asyncio.Event()

    async def died() -> None:
        raise RuntimeError("tick bug")

    async def waits_for_stop() -> None:
        await stop.wait()

    async def stuck() -> None:
        await asyncio.sleep(3600)

    background = [
        asyncio.create_task(died(), name="scheduler"),
        asyncio.create_task(waits_for_stop(), name="care"),
        asyncio.create_task(stuck(), name="autopost"),
    ]
    app: Any = SimpleNamespace(services=SimpleNamespace(tasks=TaskTracker()))
    with capture_logs() as logs:
        await runner._shut_down(app, stop, background, 0.2)
    assert all(task.done() for task in background)
    assert background[2].cancelled()
    [failure] = [entry for entry in logs if entry["event"] == "background.failed"]
    assert failure["task"] == "scheduler"
