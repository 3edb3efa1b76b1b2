"""1,000 presses in a storm: backends terminated every 20-80 ms, 2 % of press replies and
COMMIT replies dropped after the server acted (the connection reset), PostgreSQL restarted once."""

from __future__ import annotations

import asyncio
import gc
import random
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from aiogram.methods import AnswerCallbackQuery

from benchmarks.common import BenchApp, Cluster, LoopMonitor, ms, timer
from benchmarks.presses import CHAT, TOKEN, seed_queue
from bot.presentation.keyboards import QueueAction, QueueCallback
from bot.presentation.texts import PRESS_FAILED
from db.engine import EngineOptions
from tests.helpers.fake_telegram_session import callback_update, queue_message, user
from tests.helpers.pgproxy import PgProxy, ThreadedPgProxy

APP = "storyqueue-chaos"
PRESS_SLOW = "⏳ Recording…"  # the early answer to a press still in progress


async def run(cluster: Cluster, presses: int = 1000, seed: int = 11) -> None:
    rng = random.Random(seed)
    name = await cluster.fresh_database()
    proxy = ThreadedPgProxy(
        PgProxy(cluster.embedded.socket_dir, Path(tempfile.mkdtemp(prefix="sqbc")))
    )
    proxy.start()
    proxy.proxy.cut_at_random(0.02, lambda data: b"press:" in data or b"COMMIT" in data)
    app = BenchApp.build(
        EngineOptions(
            url=proxy.url(name),
            pool_size=10,
            max_overflow=0,
            application_name=APP,
            command_timeout_seconds=5,
        ),
        CHAT,
        TOKEN,
    )
    sessions, telegram, bot, dispatcher = app.sessions, app.telegram, app.bot, app.dispatcher
    queue_ids = await seed_queue(sessions, presses)
    alice, bob = user(1, "Alice"), user(2, "Bob")
    sent_presses = 0
    retries = 0
    restart_at: float | None = None
    restarted_at: float | None = None
    recorded_at: list[float] = []
    toasts: dict[uuid.UUID, list[str | None]] = {}
    stop = asyncio.Event()

    def answer_for(callback_id: str) -> str | None:
        for call in reversed(telegram.calls):
            if isinstance(call, AnswerCallbackQuery) and call.callback_query_id == callback_id:
                return call.text
        return None

    async def tap(queue_id: uuid.UUID, who: Any, action: QueueAction) -> str | None:
        nonlocal sent_presses
        data = QueueCallback(action=action, queue_id=queue_id).pack()
        update = callback_update(data, queue_message(CHAT, 1, "📄 x.jpg"), who)
        sent_presses += 1
        await dispatcher.feed_update(bot, update)
        toast = answer_for(update.callback_query.id)  # type: ignore[union-attr]
        toasts.setdefault(queue_id, []).append(toast)
        if toast not in (None, PRESS_FAILED):
            recorded_at.append(timer())
        return toast

    witness: list[asyncpg.Connection] = []

    async def has_history(queue_id: uuid.UUID) -> bool:
        """Read apart from the bot (its backends are the ones terminated)."""
        while True:
            try:
                if not witness:
                    witness.append(await reconnect())
                return bool(
                    await witness[0].fetchval(
                        "SELECT EXISTS (SELECT 1 FROM posting_history WHERE queue_item_id = $1)",
                        queue_id,
                    )
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                witness.clear()

    async def until_recorded(queue_id: uuid.UUID, who: Any, action: QueueAction) -> None:
        nonlocal retries
        for _ in range(30):
            toast = await tap(queue_id, who, action)
            # A slow press is answered "Recording…" at once; its result (maybe
            # "press again") then comes as the message's caption.
            if toast != PRESS_FAILED and (toast != PRESS_SLOW or await has_history(queue_id)):
                return
            retries += 1  # told to press again, and does
            await asyncio.sleep(0.05)

    async def sniper(admin: asyncpg.Connection) -> int:
        kills = 0
        while not stop.is_set():
            await asyncio.sleep(rng.uniform(0.02, 0.08))
            try:
                kills += await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = $1",
                    APP,
                )
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.exceptions.InternalClientError,
            ):
                admin = await reconnect()
        return kills

    async def reconnect() -> asyncpg.Connection:
        while True:
            try:
                return await asyncpg.connect(cluster.dsn(name))
            except (OSError, asyncpg.PostgresError):
                await asyncio.sleep(0.1)

    async def restart_once() -> None:
        nonlocal restart_at, restarted_at
        await asyncio.sleep(2.0)
        restart_at = timer()
        await asyncio.to_thread(cluster.embedded.pg_ctl, "restart", "-w", "-m", "fast")
        restarted_at = timer()

    gc.freeze()  # as `python -m bot run` does after startup
    monitor = LoopMonitor()
    monitor.start()
    admin = await asyncpg.connect(cluster.dsn(name))
    sniping = asyncio.create_task(sniper(admin))
    restarting = asyncio.create_task(restart_once())
    started = timer()
    kinds = {"single": 0, "double tap": 0, "conflict": 0}
    try:
        batch = []
        for queue_id in queue_ids:
            roll = rng.random()
            if roll < 0.20:
                kinds["double tap"] += 1
                batch.append(
                    asyncio.gather(
                        until_recorded(queue_id, alice, QueueAction.POSTED),
                        until_recorded(queue_id, alice, QueueAction.POSTED),
                    )
                )
            elif roll < 0.25:
                kinds["conflict"] += 1
                batch.append(
                    asyncio.gather(
                        until_recorded(queue_id, alice, QueueAction.POSTED),
                        until_recorded(queue_id, bob, QueueAction.SKIP),
                    )
                )
            else:
                kinds["single"] += 1
                batch.append(until_recorded(queue_id, alice, QueueAction.POSTED))
            if len(batch) == 20:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
        await restarting
    finally:
        stop.set()
        kills = await sniping
        seconds = timer() - started
        await monitor.stop()
        await app.services.tasks.drain(10)

    checker = await reconnect()
    try:
        history = await checker.fetchrow(
            "SELECT count(*) AS rows, count(DISTINCT queue_item_id) AS items FROM posting_history"
        )
        lost_ids = await checker.fetch(
            "SELECT q.id FROM unnest($1::uuid[]) AS q(id)"
            " WHERE NOT EXISTS (SELECT 1 FROM posting_history h WHERE h.queue_item_id = q.id)",
            queue_ids,
        )
        lost = len(lost_ids)
        idle = await checker.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            " AND state = 'idle in transaction'",
            APP,
        )
    finally:
        await checker.close()
        for connection in witness:
            await connection.close()
        await app.close()
        proxy.stop()
    answered = len(
        {call.callback_query_id for call in telegram.calls if isinstance(call, AnswerCallbackQuery)}
    )
    print(
        f"chaos: {presses} items in {seconds:.1f} s ({kinds['single']} single, "
        f"{kinds['double tap']} double taps, {kinds['conflict']} Posted-vs-Skip conflicts); "
        f"{kills} backends terminated, {proxy.proxy.cuts} replies dropped, one PostgreSQL restart"
    )
    print(
        f"  presses sent {sent_presses}, answered {answered}, told to press again {retries}"
        f" ({retries / max(sent_presses, 1) * 50:.2f} per 50 presses; target <= 1)"
    )
    print(
        f"  history rows {history['rows']}, duplicate history rows {history['rows'] - history['items']}, "
        f"lost presses {lost}, idle in transaction at the end {idle}"
    )
    if restart_at is not None and restarted_at is not None:
        after = [moment for moment in recorded_at if moment > restarted_at]
        gaps = [b - a for a, b in zip(sorted(recorded_at), sorted(recorded_at)[1:], strict=False)]
        print(
            f"  restart: pg_ctl restart took {ms(restarted_at - restart_at)}; first press recorded"
            f" {ms(after[0] - restarted_at) if after else 'never'} after it returned;"
            f" longest gap between recorded presses {ms(max(gaps) if gaps else 0)}"
        )
    print(f"  {monitor.summary()}")
    for row in lost_ids:
        print(f"  LOST {row['id']}: toasts {toasts.get(row['id'])}")
