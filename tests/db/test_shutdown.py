"""Shutdown: presses in flight and every background loop share one grace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageCaption, SendMessage
from aiogram.types import Update
from sqlalchemy import text

from bot import runner
from bot.presentation.keyboards import QueueAction, QueueCallback, queue_keyboard
from bot.presentation.texts import PAUSED
from bot.services.tasks import TaskTracker
from tests.helpers.fake_telegram_session import callback_update, command_update, queue_message
from tests.helpers.support import (
    ADA,
    ALICE,
    TEAM_CHAT,
    TestApp,
    fetch_all,
    seed_media,
    seed_queue_item,
)


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


@asynccontextmanager
async def _cancelled_while_waiting(app: TestApp, table: str, update: Update) -> AsyncIterator[None]:
    """Feed `update` with `table` locked; cancel its handler, as shutdown does, once it waits.

    The body runs while the lock is still held.
    """
    async with app.sessions() as blocker, blocker.begin():
        await blocker.execute(text(f"SELECT 1 FROM {table} FOR UPDATE"))
        handling = asyncio.create_task(app.feed(update))
        async with asyncio.timeout(10):
            while not await _lock_waiters(app):
                await asyncio.sleep(0.05)
        handling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handling
        yield


async def _lock_waiters(app: TestApp) -> int:
    [row] = await fetch_all(
        app.sessions,
        "SELECT count(*) AS n FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    return int(row.n)


async def test_a_press_whose_handler_shutdown_cancels_still_commits_and_edits(
    app: TestApp,
) -> None:
    """The RUNS_TO_COMPLETION flag: cancelling the handler does not cancel its work."""
    [media_id] = await seed_media(app.sessions)
    queue_id = await seed_queue_item(app.sessions, media_id)
    data = QueueCallback(action=QueueAction.POSTED, queue_id=queue_id).pack()
    message = queue_message(TEAM_CHAT, 500, "Hello", queue_keyboard(queue_id, instagram=False))
    # Hold the queue row: the press waits inside its statement.
    async with _cancelled_while_waiting(
        app, "posting_queue", callback_update(data, message, ALICE.user)
    ):
        assert app.services.tasks.pending == 1
        async with asyncio.timeout(10):  # the cancelled handler's work goes on: it answers
            while not app.telegram.of(AnswerCallbackQuery):
                await asyncio.sleep(0.05)
    await app.services.tasks.drain(5)

    history = await fetch_all(app.sessions, "SELECT status FROM posting_history")
    assert [r.status for r in history] == ["posted"]
    assert app.telegram.of(EditMessageCaption)[-1].caption.endswith("✅ Posted by Alice")
    assert [a.text for a in app.telegram.of(AnswerCallbackQuery)] == ["⏳ Recording…"]


async def test_a_pause_whose_handler_shutdown_cancels_still_pauses_and_replies(
    app: TestApp,
) -> None:
    """An admin's change is flagged RUNS_TO_COMPLETION too: never a change without its reply."""
    # Hold the chat's settings row: /pause waits inside its transaction.
    async with _cancelled_while_waiting(
        app, "chat_settings", command_update("/pause", TEAM_CHAT, ADA.user)
    ):
        pass
    await app.services.tasks.drain(5)

    [chat] = await fetch_all(app.sessions, "SELECT is_paused FROM chat_settings")
    assert chat.is_paused
    assert [m.text for m in app.telegram.of(SendMessage)] == [PAUSED]
