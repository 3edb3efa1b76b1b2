"""Real faults on the real PostgreSQL: terminated backends, a cut COMMIT, a server restart."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiogram.methods import EditMessageCaption
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import await_

from bot.app import build_app
from bot.config import Settings
from bot.database import Database
from bot.domain import Press
from bot.presentation.keyboards import QueueAction, QueueCallback, queue_keyboard
from bot.services.press import OutcomeKind, PressOutcome, PressService
from db.engine import EngineOptions, create_engine, create_session_factory
from db.errors import DatabaseUnavailableError
from db.repositories.press import PRESS_STATE_STATEMENT_NAME, PRESS_STATEMENT_NAME
from db.retry import Idempotent, RetryPolicy, run_with_retry
from db.vocabulary import Verdict
from tests.helpers.fake_telegram_session import RecordingSession, callback_update, queue_message
from tests.helpers.pgproxy import PgProxy, ProxiedEngines
from tests.helpers.silent_socket import (
    RECORDED_WITHIN_SECONDS,
    apply_session_defaults,
    presses_on_silent_sockets,
    vanish_holding_the_row,
)
from tests.helpers.support import (
    ALICE,
    BOB,
    TEAM_CHAT,
    PostgresHandle,
    fetch_all,
    seed_chat,
    seed_media,
    seed_queue_item,
    seed_queued_items,
)

APP_NAME = "storyqueue-faults"


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(_dsn(database_url))
    yield connection
    await connection.close()


def _engine(url: str, pool_size: int = 2) -> AsyncEngine:
    return create_engine(
        EngineOptions(
            url=url,
            pool_size=pool_size,
            max_overflow=0,
            application_name=APP_NAME,
            command_timeout_seconds=5,
        )
    )


@pytest.fixture
async def faulty(
    database_url: str,
) -> AsyncIterator[tuple[AsyncEngine, async_sessionmaker[AsyncSession]]]:
    engine = _engine(database_url)
    yield engine, create_session_factory(engine)
    await engine.dispose()


async def _kill_app_backends(admin: asyncpg.Connection) -> int:
    return int(
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            APP_NAME,
        )
    )


async def _prepare(sessions: async_sessionmaker[AsyncSession], count: int = 1) -> list[uuid.UUID]:
    await seed_chat(sessions)
    queue_ids = []
    for media_id in await seed_media(sessions, count=count):
        queue_ids.append(await seed_queue_item(sessions, media_id))
    return queue_ids


async def _press_through_the_bot(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    queue_id: uuid.UUID,
) -> RecordingSession:
    """✅ Posted through the real dispatcher; returns the Bot API calls it made."""
    telegram = RecordingSession()
    built = build_app(settings, Database(engine=engine, sessions=sessions), session=telegram)
    data = QueueCallback(action=QueueAction.POSTED, queue_id=queue_id).pack()
    message = queue_message(
        TEAM_CHAT, 500, "Hi\n\n📄 a.jpg", queue_keyboard(queue_id, instagram=False)
    )
    await built.dispatcher.feed_update(built.bot, callback_update(data, message, ALICE.user))
    await built.services.tasks.drain(5)
    return telegram


def _caption_after(telegram: RecordingSession) -> str:
    return str(telegram.of(EditMessageCaption)[-1].caption)


def _make_press(queue_id: uuid.UUID, status: Verdict = Verdict.POSTED) -> Press:
    return Press(queue_id=queue_id, chat_id=TEAM_CHAT, status=status, presser=ALICE.identity)


async def _assert_recorded_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    history = await fetch_all(sessions, "SELECT status FROM posting_history")
    assert [row.status for row in history] == ["posted"]
    [media] = await fetch_all(sessions, "SELECT times_posted FROM media_items")
    assert media.times_posted == 1
    locks = await fetch_all(sessions, "SELECT reason FROM media_locks")
    assert [lock.reason for lock in locks] == ["recent_post"]
    [presser] = await fetch_all(sessions, "SELECT total_posts FROM users")
    assert presser.total_posts == 1
    assert await fetch_all(sessions, "SELECT 1 FROM posting_queue") == []


async def test_backend_killed_while_idle_in_the_pool(
    faulty: Any, admin: asyncpg.Connection
) -> None:
    _, sessions = faulty
    [queue_id] = await _prepare(sessions)
    async with sessions() as session:
        await session.execute(text("SELECT 1"))  # a pooled connection now exists
    assert await _kill_app_backends(admin) >= 1

    outcome = await PressService(sessions).record(_make_press(queue_id))

    assert outcome.kind is OutcomeKind.RECORDED
    await _assert_recorded_once(sessions)


def _kill_own_backend_at(
    engine: AsyncEngine, admin: asyncpg.Connection, statement_name: str
) -> list[bool]:
    """The first time the named statement runs, its own backend is terminated; the kills."""
    killed: list[bool] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def kill_own_backend(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement_name in statement and not killed:
            pid = conn.connection.dbapi_connection.driver_connection.get_server_pid()
            killed.append(await_(admin.fetchval("SELECT pg_terminate_backend($1)", pid)))

    return killed


async def test_backend_killed_during_the_unit_of_work(
    faulty: Any, admin: asyncpg.Connection, settings: Settings
) -> None:
    engine, sessions = faulty
    [queue_id] = await _prepare(sessions)
    killed = _kill_own_backend_at(engine, admin, PRESS_STATEMENT_NAME)

    telegram = await _press_through_the_bot(engine, sessions, settings, queue_id)

    assert killed == [True]
    await _assert_recorded_once(sessions)
    assert _caption_after(telegram) == "Hi\n\n📄 a.jpg\n\n✅ Posted by Alice"


async def test_backend_killed_before_the_lost_race_state_read(
    faulty: Any, admin: asyncpg.Connection
) -> None:
    """The press runs without a COMMIT; its other statement, the state read, meets the fault."""
    engine, sessions = faulty
    [queue_id] = await _prepare(sessions)
    service = PressService(sessions)
    bob = BOB.identity
    first = await service.record(Press(queue_id, TEAM_CHAT, Verdict.SKIPPED, bob))
    assert first.kind is OutcomeKind.RECORDED
    killed = _kill_own_backend_at(engine, admin, PRESS_STATE_STATEMENT_NAME)

    outcome = await service.record(_make_press(queue_id))

    assert killed == [True]
    assert (outcome.kind, outcome.status, outcome.acted_by_name) == (
        OutcomeKind.ALREADY,
        "skipped",
        "Bob",
    )
    history = await fetch_all(sessions, "SELECT status FROM posting_history")
    assert [row.status for row in history] == ["skipped"]


async def test_the_press_lands_but_its_answer_is_lost(
    proxy: PgProxy, proxied_engines: ProxiedEngines, settings: Settings
) -> None:
    """The ambiguous outcome: the server ran (and committed) the press, the client saw the connection die."""
    engine = proxied_engines.open(application_name=APP_NAME)
    sessions = create_session_factory(engine)
    [queue_id] = await _prepare(sessions)
    # The press's parameters travel in its Bind message (autocommit: no COMMIT).
    proxy.cut_after_reply_to(lambda data: b"press:posted" in data)

    telegram = await _press_through_the_bot(engine, sessions, settings, queue_id)

    assert proxy.cuts == 1
    await _assert_recorded_once(sessions)
    assert _caption_after(telegram) == "Hi\n\n📄 a.jpg\n\n✅ Posted by Alice"


async def test_a_press_costs_one_round_trip(
    proxy: PgProxy, proxied_engines: ProxiedEngines
) -> None:
    """The one statement (user upsert and interaction log included), in autocommit."""
    engine = proxied_engines.open(pool_size=1, application_name=APP_NAME)
    sessions = create_session_factory(engine)
    warm_up, measured = await _prepare(sessions, count=2)
    service = PressService(sessions)
    await service.record(_make_press(warm_up))  # connects and prepares the statement once
    await service.record(_make_press(warm_up))  # and the lost race's state read
    before = proxy.round_trips

    outcome = await service.record(_make_press(measured, Verdict.SKIPPED))

    assert outcome.kind is OutcomeKind.RECORDED
    assert proxy.round_trips - before == 1
    await _assert_recorded_once_each(sessions, 2)

    # A press that lost the race costs one more: the state read.
    before = proxy.round_trips
    again = await service.record(_make_press(measured, Verdict.POSTED))
    assert again.kind is OutcomeKind.ALREADY
    assert proxy.round_trips - before == 2


async def _assert_recorded_once_each(
    sessions: async_sessionmaker[AsyncSession], items: int
) -> None:
    counts = await fetch_all(
        sessions,
        "SELECT count(*) AS rows, count(DISTINCT queue_item_id) AS items FROM posting_history",
    )
    assert (counts[0].rows, counts[0].items) == (items, items)
    assert await fetch_all(sessions, "SELECT 1 FROM posting_queue") == []


async def test_server_restart(faulty: Any, postgres: PostgresHandle) -> None:
    if postgres.embedded is None:
        pytest.skip("needs the embedded server to restart it")
    _, sessions = faulty
    [queue_id] = await _prepare(sessions)
    async with sessions() as session:
        await session.execute(text("SELECT 1"))

    await asyncio.to_thread(postgres.embedded.pg_ctl, "restart", "-w", "-m", "fast")

    outcome = await PressService(sessions).record(_make_press(queue_id))
    assert outcome.kind is OutcomeKind.RECORDED
    await _assert_recorded_once(sessions)


async def test_200_presses_under_fire_leave_nothing_idle_in_transaction(
    database_url: str, admin: asyncpg.Connection
) -> None:
    engine = _engine(database_url, pool_size=4)
    sessions = create_session_factory(engine)
    rng = random.Random(7)
    try:
        queue_ids = await _prepare(sessions, count=200)
        service = PressService(sessions, RetryPolicy(reconnect_deadline_seconds=2.0))
        stop = asyncio.Event()

        async def sniper() -> None:
            while not stop.is_set():
                await asyncio.sleep(rng.uniform(0.01, 0.05))
                await _kill_app_backends(admin)

        async def press_until_recorded(queue_id: uuid.UUID) -> tuple[PressOutcome, int]:
            for tries in range(1, 20):
                try:
                    return await service.record(
                        _make_press(queue_id, rng.choice([Verdict.POSTED, Verdict.SKIPPED]))
                    ), tries
                except DatabaseUnavailableError:
                    continue  # the user is told to press again, and does
            raise AssertionError("never recorded")

        sniping = asyncio.create_task(sniper())
        results = []
        try:
            for start in range(0, 200, 10):
                results += await asyncio.gather(
                    *(press_until_recorded(q) for q in queue_ids[start : start + 10])
                )
        finally:
            stop.set()
            await sniping

        assert all(outcome.kind is OutcomeKind.RECORDED for outcome, _ in results)
        counts = await admin.fetchrow(
            "SELECT count(*) AS rows, count(DISTINCT queue_item_id) AS items FROM posting_history"
        )
        assert (counts["rows"], counts["items"]) == (200, 200)
        assert await admin.fetchval("SELECT count(*) FROM posting_queue") == 0
        idle = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = $1 AND state = 'idle in transaction'",
            APP_NAME,
        )
        assert idle == 0
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(
    faulty: Any, admin: asyncpg.Connection
) -> None:
    _, sessions = faulty
    async with sessions() as session:
        old_pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    assert await _kill_app_backends(admin) >= 1
    await asyncio.sleep(0.3)  # the driver reads the server's goodbye and marks it closed

    # No retry wrapper here: the pool itself must not hand out the dead connection.
    async with sessions() as session:
        new_pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    assert new_pid != old_pid


async def test_a_disconnect_discards_only_the_broken_connection(
    database_url: str, admin: asyncpg.Connection
) -> None:
    engine = _engine(database_url, pool_size=3)
    try:
        connections = [await engine.connect() for _ in range(3)]
        pids = [
            (await c.execute(text("SELECT pg_backend_pid()"))).scalar_one() for c in connections
        ]
        for connection in connections[1:]:
            await connection.close()  # back to the pool, alive
        await admin.execute("SELECT pg_terminate_backend($1)", pids[0])
        with pytest.raises(DBAPIError):
            await connections[0].execute(text("SELECT 1"))
        await connections[0].close()

        survivors = [await engine.connect() for _ in range(2)]
        reused = {
            (await c.execute(text("SELECT pg_backend_pid()"))).scalar_one() for c in survivors
        }
        for connection in survivors:
            await connection.close()
        # SQLAlchemy's default would have invalidated the whole pool: new backends here.
        assert reused == set(pids[1:])
    finally:
        await engine.dispose()


async def test_an_operation_without_a_reread_waits_out_a_restart(
    faulty: Any, postgres: PostgresHandle
) -> None:
    """The scheduler's and the commands' units of work: their second attempt waits for the server."""
    if postgres.embedded is None:
        pytest.skip("needs the embedded server to stop and start it")
    _, sessions = faulty
    embedded = postgres.embedded
    attempts = 0
    restarting: list[asyncio.Task[None]] = []

    async def back_in_a_moment() -> None:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(embedded.start_again)

    async def read(session: AsyncSession) -> int:
        nonlocal attempts
        attempts += 1
        async with session.begin():
            value = (await session.execute(text("SELECT 41 + 1"))).scalar_one()
        if attempts == 1:
            # The server goes away right after the first attempt reached it.
            await asyncio.to_thread(embedded.stop_server_only)
            restarting.append(asyncio.create_task(back_in_a_moment()))
            raise OperationalError(
                "SELECT", {}, ConnectionResetError("server closed the connection")
            )
        return int(value)

    try:
        result = await run_with_retry(
            sessions,
            read,
            repeat=Idempotent("it only reads"),
            operation="test.read",
            policy=RetryPolicy(reconnect_deadline_seconds=15),
        )
    finally:
        await asyncio.gather(*restarting)
    assert result == 42
    assert attempts == 2


@pytest.mark.parametrize("delivered", [True, False], ids=["answer-lost", "statement-lost"])
async def test_presses_on_silent_sockets_are_recorded_by_their_retry(
    proxy: PgProxy, proxied_engines: ProxiedEngines, delivered: bool
) -> None:
    """Half-open sockets: each press is recorded within seconds, and nobody presses again."""
    engine = proxied_engines.open(pool_size=6, application_name=APP_NAME)
    sessions = create_session_factory(engine)
    queue_ids = await seed_queued_items(sessions, 6)

    run = await presses_on_silent_sockets(sessions, proxy, queue_ids, delivered=delivered)

    assert run.silenced == 6
    assert run.recorded == 6
    assert run.needed_a_repeat == 0
    assert run.longest_seconds < RECORDED_WITHIN_SECONDS
    await _assert_recorded_once_each(sessions, 6)


async def test_an_auto_post_begun_while_a_press_was_lost_answers_busy_not_gone(
    proxy: PgProxy, proxied_engines: ProxiedEngines, session_factory: Any
) -> None:
    """The press statement is lost on a silent socket; meanwhile 🤖 claims the item."""
    engine = proxied_engines.open(application_name=APP_NAME)
    sessions = create_session_factory(engine)
    [queue_id] = await seed_queued_items(sessions, 1)
    marker = str(queue_id).encode()
    proxy.go_silent_on(lambda data: marker in data and b"press:" in data, delivered=False)
    pressing = asyncio.create_task(
        PressService(sessions).record(Press(queue_id, TEAM_CHAT, Verdict.POSTED, ALICE.identity))
    )
    async with asyncio.timeout(10):
        while proxy.silenced == 0 and not pressing.done():
            await asyncio.sleep(0.01)
    assert proxy.silenced == 1, "the press statement never reached the proxy"
    async with session_factory() as session, session.begin():
        await session.execute(
            text(
                "UPDATE posting_queue SET status = 'publishing', claimed_at = now(),"
                " lease_expires_at = now() + interval '5 minutes' WHERE id = :id"
            ),
            {"id": queue_id},
        )
    outcome = await pressing
    assert outcome.kind is OutcomeKind.BUSY
    [row] = await fetch_all(sessions, "SELECT status FROM posting_queue")
    assert row.status == "publishing"
    assert await fetch_all(sessions, "SELECT 1 FROM posting_history") == []


async def test_a_vanished_transaction_holds_the_item_for_seconds_only(
    database_url: str, proxy: PgProxy, proxied_engines: ProxiedEngines
) -> None:
    """Its client went silent inside a transaction holding the queue row's lock."""
    name = make_url(database_url).database or ""
    engine = proxied_engines.open(application_name=APP_NAME)
    sessions = create_session_factory(engine)
    await apply_session_defaults(engine)  # the role's server-side defaults (migration 0003)
    [queue_id] = await seed_queued_items(sessions, 1)
    await vanish_holding_the_row(
        f"postgresql://postgres@/{name}?host={proxy.socket_dir}", proxy, queue_id
    )

    started = asyncio.get_running_loop().time()
    outcome = await PressService(sessions).record(_make_press(queue_id))

    assert outcome.kind is OutcomeKind.RECORDED
    assert asyncio.get_running_loop().time() - started < RECORDED_WITHIN_SECONDS
    await _assert_recorded_once(sessions)


async def test_an_exhausted_pool_tells_the_user_to_press_again(
    database_url: str, settings: Settings
) -> None:
    """Every connection is busy past the checkout timeout: the same clear answer as a dead database."""
    engine = create_engine(
        EngineOptions(url=database_url, pool_size=1, max_overflow=0, connect_timeout_seconds=0.3)
    )
    sessions = create_session_factory(engine)
    try:
        [queue_id] = await _prepare(sessions)
        async with engine.connect() as busy:
            await busy.execute(text("SELECT 1"))  # holds the pool's only connection

            telegram = await _press_through_the_bot(engine, sessions, settings, queue_id)

        assert _caption_after(telegram) == (
            "Hi\n\n📄 a.jpg\n\n❌ Couldn't record that — please press again"
        )
        assert await fetch_all(sessions, "SELECT 1 FROM posting_history") == []
        assert len(await fetch_all(sessions, "SELECT 1 FROM posting_queue")) == 1
    finally:
        await engine.dispose()


async def test_the_reread_after_a_lost_answer_runs_without_begin_or_commit(
    proxy: PgProxy, proxied_engines: ProxiedEngines
) -> None:
    """The retry's re-read runs alone too: no COMMIT whose answer could be lost or hang."""
    engine = proxied_engines.open(pool_size=1, application_name=APP_NAME)
    sessions = create_session_factory(engine)
    [queue_id] = await _prepare(sessions)
    sent: list[bytes] = []

    def spy(data: bytes) -> bool:
        sent.append(data)
        return False

    proxy.cut_at_random(1e-12, spy)  # sees every message, cuts none
    proxy.cut_after_reply_to(lambda data: b"press:posted" in data)

    outcome = await PressService(sessions).record(_make_press(queue_id))

    assert outcome.kind is OutcomeKind.RECORDED
    assert proxy.cuts == 1
    assert any(PRESS_STATE_STATEMENT_NAME.encode() in data for data in sent)  # the re-read ran
    assert not any(b"BEGIN" in data or b"COMMIT" in data for data in sent)
    await _assert_recorded_once(sessions)
