"""Presses through the real dispatcher path: throughput, database latency, round trips."""

from __future__ import annotations

import asyncio
import gc
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from benchmarks.common import BenchApp, Cluster, LoopMonitor, ms, percentile, timer
from bot.domain import TelegramIdentity
from bot.presentation.keyboards import QueueAction, QueueCallback
from bot.services.press import Press, PressService
from db.engine import EngineOptions, create_engine, create_session_factory
from db.errors import DatabaseUnavailableError
from db.vocabulary import Verdict
from tests.helpers.fake_telegram_session import callback_update, queue_message, user
from tests.helpers.pgbouncer import PgBouncer, pgbouncer_binary
from tests.helpers.pgproxy import PgProxy, ThreadedPgProxy

CHAT = -100888
TOKEN = "123456:" + "B" * 35


@dataclass
class PressRun:
    presses: int
    seconds: float
    db_times: list[float]
    round_trips: float
    stall: LoopMonitor
    failures: int


async def seed_queue(sessions: Any, count: int) -> list[uuid.UUID]:
    async with sessions() as session, session.begin():
        await session.execute(
            text("INSERT INTO chat_settings (telegram_chat_id) VALUES (:c) ON CONFLICT DO NOTHING"),
            {"c": CHAT},
        )
        rows = await session.execute(
            text(
                "WITH media AS ("
                " INSERT INTO media_items (chat_id, file_path, file_name, file_size, file_hash,"
                " media_kind, mime_type)"
                " SELECT :c, 'b/' || gen_random_uuid() || '.jpg', 'x.jpg', 1, md5(random()::text),"
                " 'photo', 'image/jpeg' FROM generate_series(1, :n) RETURNING id)"
                " INSERT INTO posting_queue (media_item_id, chat_id, status, telegram_message_id)"
                " SELECT id, :c, 'sent', 1 FROM media RETURNING id"
            ),
            {"c": CHAT, "n": count},
        )
        return [row[0] for row in rows]


async def press_run(
    url: str, proxy: ThreadedPgProxy | None, concurrency: int, count: int, pgbouncer: bool = False
) -> PressRun:
    """Presses through `url`; round trips are counted when `url` goes through `proxy`."""
    options = EngineOptions(
        url=url,
        pool_size=10,
        max_overflow=0,
        pgbouncer=pgbouncer,
        command_timeout_seconds=30,
        connect_timeout_seconds=30,
    )
    app = BenchApp.build(options, CHAT, TOKEN)
    sessions, services, dispatcher, bot = app.sessions, app.services, app.dispatcher, app.bot
    db_times: list[float] = []
    original = services.press.record

    async def timed(press: Any) -> Any:
        started = timer()
        try:
            return await original(press)
        finally:
            db_times.append(timer() - started)

    services.press.record = timed  # type: ignore[method-assign]
    try:
        warm = await seed_queue(sessions, 2 * max(concurrency, 10))
        queue_ids = await seed_queue(sessions, count)
        users = [user(1000 + i, f"user{i}") for i in range(max(concurrency, 1))]

        async def press(queue_id: uuid.UUID, who: Any) -> None:
            data = QueueCallback(action=QueueAction.POSTED, queue_id=queue_id).pack()
            await dispatcher.feed_update(
                bot, callback_update(data, queue_message(CHAT, 1, "📄 x.jpg"), who)
            )

        # Warm-up at full concurrency: opens the pool's connections before measuring.
        await asyncio.gather(
            *(press(queue_id, users[i % len(users)]) for i, queue_id in enumerate(warm))
        )
        db_times.clear()
        work: asyncio.Queue[uuid.UUID] = asyncio.Queue()
        for queue_id in queue_ids:
            work.put_nowait(queue_id)

        async def worker(who: Any) -> None:
            while not work.empty():
                await press(work.get_nowait(), who)

        gc.freeze()  # as `python -m bot run` does after startup
        monitor = LoopMonitor()
        monitor.start()
        trips_before = proxy.round_trips if proxy else 0
        started = timer()
        await asyncio.gather(*(worker(users[i]) for i in range(concurrency)))
        seconds = timer() - started
        trips = proxy.round_trips - trips_before if proxy else 0
        await monitor.stop()
        async with sessions() as session, session.begin():
            recorded = (
                await session.execute(
                    text("SELECT count(*) FROM posting_history WHERE queue_item_id = ANY(:ids)"),
                    {"ids": queue_ids},
                )
            ).scalar_one()
        return PressRun(
            presses=count,
            seconds=seconds,
            db_times=db_times,
            round_trips=trips / count,
            stall=monitor,
            failures=count - recorded,
        )
    finally:
        await app.close()


def report(label: str, concurrency: int, run: PressRun, round_trips: float) -> None:
    print(
        f"  {label:<10} C={concurrency:<4} {run.presses / run.seconds:8.0f} presses/s  "
        f"db p50 {ms(percentile(run.db_times, 0.5)):>9}  p99 {ms(percentile(run.db_times, 0.99)):>9}  "
        f"{round_trips:.2f} round trips/press  {run.stall.summary()}"
        + (f"  UNRECORDED {run.failures}" if run.failures else "")
    )


async def run_all(cluster: Cluster, count: int = 600) -> None:
    print(
        f"presses: {count} distinct items per run, dispatcher -> service -> PostgreSQL; "
        "Telegram faked at the session"
    )
    # Round trips are counted in separate 100-press runs through a counting proxy
    # (on its own thread); the timed runs connect without it.
    proxy = ThreadedPgProxy(
        PgProxy(cluster.embedded.socket_dir, Path(tempfile.mkdtemp(prefix="sqbp")))
    )
    proxy.start()
    try:
        name = await cluster.fresh_database()
        for concurrency in (1, 10, 100):
            counted = await press_run(proxy.url(name), proxy, concurrency, 100)
            timed = await press_run(cluster.url_for(name), None, concurrency, count)
            report("direct", concurrency, timed, counted.round_trips)
        await half_open_run(cluster, name)
        json_for_aiogram()
        if pgbouncer_binary() is None:
            print("  pgbouncer: not installed (apt-get install pgbouncer), skipped")
            return
        direct = PgBouncer(cluster.embedded.socket_dir, pool_size=10)
        await asyncio.to_thread(direct.start)
        # Counted between the bot and the pooler: the round trips the bot waits for.
        counting = ThreadedPgProxy(
            PgProxy(
                cluster.embedded.socket_dir,
                Path(tempfile.mkdtemp(prefix="sqbb")),
                upstream_tcp=("127.0.0.1", direct.port),
            )
        )
        counting.start()
        try:
            for concurrency in (1, 10, 100):
                counted = await press_run(
                    counting.url(name), counting, concurrency, 100, pgbouncer=True
                )
                timed = await press_run(direct.url(name), None, concurrency, count, pgbouncer=True)
                report("pgbouncer", concurrency, timed, counted.round_trips)
        finally:
            counting.stop()
            await asyncio.to_thread(direct.stop)
    finally:
        proxy.stop()


async def half_open_run(
    cluster: Cluster, name: str, presses: int = 200, concurrency: int = 10, fraction: float = 0.08
) -> None:
    """Presses whose sockets go silent (half-open) at random: how long until each is recorded."""
    proxy = ThreadedPgProxy(
        PgProxy(cluster.embedded.socket_dir, Path(tempfile.mkdtemp(prefix="sqbh")))
    )
    proxy.start()
    engine = create_engine(
        EngineOptions(url=proxy.url(name), pool_size=concurrency, max_overflow=0)
    )
    sessions = create_session_factory(engine)
    try:
        queue_ids = await seed_queue(sessions, presses)
        service = PressService(sessions)
        # A coin decides whether the silenced statement reached the server first.
        proxy.proxy.go_silent_at_random(fraction, lambda data: b"press:" in data, delivered=None)
        durations: list[float] = []
        repeats = 0
        work: asyncio.Queue[uuid.UUID] = asyncio.Queue()
        for queue_id in queue_ids:
            work.put_nowait(queue_id)

        async def worker(index: int) -> None:
            nonlocal repeats
            presser = TelegramIdentity(2000 + index, None, f"user{index}")
            while not work.empty():
                queue_id = work.get_nowait()
                started = timer()
                while True:
                    try:
                        await service.record(Press(queue_id, CHAT, Verdict.POSTED, presser))
                        break
                    except DatabaseUnavailableError:
                        repeats += 1  # "press again"; the user does
                durations.append(timer() - started)

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        proxy.proxy.go_silent_at_random(0.0)
        async with sessions() as session, session.begin():
            rows, items = (
                await session.execute(
                    text(
                        "SELECT count(*), count(DISTINCT queue_item_id) FROM posting_history"
                        " WHERE queue_item_id = ANY(:ids)"
                    ),
                    {"ids": queue_ids},
                )
            ).one()
        print(
            f"  half-open: {presses} presses at C={concurrency}, {proxy.proxy.silenced} sockets"
            f" went silent ({fraction:.0%} of press statements); longest press-to-record"
            f" {ms(max(durations))}, p50 {ms(percentile(durations, 0.5))}; presses needing a"
            f" repeat {repeats}; recorded {items}/{presses}, duplicate rows {rows - items}"
        )
    finally:
        await engine.dispose()
        proxy.stop()


def json_for_aiogram(iterations: int = 20000) -> None:
    """The JSON aiogram's HTTP session does per press: an Update in, two requests out."""
    import json
    import timeit

    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.methods import AnswerCallbackQuery, EditMessageCaption

    from bot.presentation.keyboards import queue_keyboard

    update = callback_update(
        QueueCallback(action=QueueAction.POSTED, queue_id=uuid.uuid4()).pack(),
        queue_message(CHAT, 1, "📄 x.jpg", queue_keyboard(uuid.uuid4(), instagram=True)),
        user(1, "Alice"),
    )
    body = json.dumps({"ok": True, "result": [update.model_dump(mode="json", exclude_none=True)]})
    edit = EditMessageCaption(
        chat_id=CHAT,
        message_id=1,
        caption="Hi\n\n📄 x.jpg\n\n✅ Posted by Alice",
        reply_markup=queue_keyboard(uuid.uuid4(), instagram=True),
    )
    answer = AnswerCallbackQuery(callback_query_id="1", text="✅ Posted by Alice")
    candidates: list[tuple[str, Any, Any]] = [("json", json.loads, json.dumps)]
    try:
        import orjson

        candidates.append(("orjson", orjson.loads, lambda value, **_: orjson.dumps(value).decode()))
    except ImportError:
        print("  aiogram JSON: orjson not installed, only the standard library measured")
    bot = BenchApp.plain_bot(TOKEN)
    for label, loads, dumps in candidates:
        session = AiohttpSession(json_loads=loads, json_dumps=dumps)

        def one_press(session: AiohttpSession = session, loads: Any = loads) -> None:
            loads(body)
            session.build_form_data(bot, edit)
            session.build_form_data(bot, answer)

        seconds = min(timeit.repeat(one_press, number=iterations, repeat=3)) / iterations
        print(
            f"  aiogram JSON with {label:<6}: {seconds * 1e6:6.1f} µs per press (1 update, 2 requests)"
        )
