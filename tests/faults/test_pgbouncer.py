"""DB_PGBOUNCER: the bot works behind a transaction-mode pooler (Neon's pooled endpoint)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.domain import Press, TelegramIdentity
from bot.services.press import OutcomeKind, PressService
from db import migrate
from db.engine import EngineOptions, create_engine, create_session_factory
from db.vocabulary import Verdict
from tests.helpers.pgbouncer import PgBouncer, pgbouncer_binary
from tests.helpers.pgproxy import PgProxy
from tests.helpers.silent_socket import (
    RECORDED_WITHIN_SECONDS,
    apply_session_defaults,
    presses_on_silent_sockets,
    vanish_holding_the_row,
)
from tests.helpers.support import (
    ALICE,
    TEAM_CHAT,
    PostgresHandle,
    Sessions,
    fetch_all,
    seed_chat,
    seed_media,
    seed_queue_item,
    seed_queued_items,
)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


pytestmark = pytest.mark.skipif(pgbouncer_binary() is None, reason="pgbouncer not installed")


@asynccontextmanager
async def _running_bouncer(postgres: PostgresHandle, pool_size: int) -> AsyncIterator[PgBouncer]:
    if postgres.embedded is None:
        pytest.skip("fronts the embedded server")
    bouncer = PgBouncer(postgres.embedded.socket_dir, pool_size=pool_size)
    await asyncio.to_thread(bouncer.start)
    yield bouncer
    await asyncio.to_thread(bouncer.stop)


@pytest.fixture
async def bouncer(postgres: PostgresHandle) -> AsyncIterator[PgBouncer]:
    async with _running_bouncer(postgres, pool_size=2) as bouncer:
        yield bouncer


@pytest.mark.parametrize("pgbouncer_mode", [True, False])
async def test_presses_through_a_transaction_pooler(
    bouncer: PgBouncer, database_url: str, pgbouncer_mode: bool
) -> None:
    name = make_url(database_url).database or ""
    engine = create_engine(
        EngineOptions(url=bouncer.url(name), pool_size=6, max_overflow=0, pgbouncer=pgbouncer_mode)
    )
    sessions = create_session_factory(engine)
    try:
        await seed_chat(sessions)
        queue_ids = [
            await seed_queue_item(sessions, media_id)
            for media_id in await seed_media(sessions, count=30)
        ]
        service = PressService(sessions)

        async def press(queue_id: Any, user_id: int) -> Any:
            return await service.record(
                Press(
                    queue_id=queue_id,
                    chat_id=TEAM_CHAT,
                    status=Verdict.POSTED,
                    presser=TelegramIdentity(user_id, None, f"u{user_id}"),
                )
            )

        # Six client connections share two server connections, so statements
        # prepared on one are looked for on another.
        outcomes = await asyncio.gather(
            *(press(q, 100 + i % 6) for i, q in enumerate(queue_ids)), return_exceptions=True
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if pgbouncer_mode:
            assert errors == []
            assert all(o.kind is OutcomeKind.RECORDED for o in outcomes)
            [count] = await fetch_all(sessions, "SELECT count(*) AS n FROM posting_history")
            assert count.n == 30
        else:
            # Without the setting the driver's statement cache collides: the reason it exists.
            assert errors, "expected prepared-statement errors behind a transaction pooler"
    finally:
        await engine.dispose()


async def test_two_processes_migrate_once_through_the_pooler(
    bouncer: PgBouncer, empty_database_url: str
) -> None:
    """Both wait out a long migration (longer than their command timeout), neither crashes."""
    name = make_url(empty_database_url).database or ""
    engines = [
        create_engine(
            EngineOptions(
                url=bouncer.url(name),
                pool_size=1,
                max_overflow=0,
                pgbouncer=True,
                command_timeout_seconds=0.5,
            )
        )
        for _ in range(2)
    ]
    other = await asyncpg.connect(_dsn(empty_database_url))
    try:
        # Another process's long migration holds the lock for 2 s.
        holding = other.transaction()
        await holding.start()
        await other.execute("SELECT pg_advisory_xact_lock($1)", migrate.MIGRATION_LOCK_KEY)
        migrating = [asyncio.create_task(migrate.upgrade(engine)) for engine in engines]
        await asyncio.sleep(2)
        assert not any(task.done() for task in migrating)
        await holding.commit()

        await asyncio.gather(*migrating)

        assert await migrate.current_revision(engines[0]) == migrate.head_revision()
        versions = await other.fetch("SELECT version_num FROM alembic_version")
        assert [row["version_num"] for row in versions] == [migrate.head_revision()]
    finally:
        await other.close()
        for engine in engines:
            await engine.dispose()


@pytest.fixture
async def roomy_bouncer(postgres: PostgresHandle) -> AsyncIterator[PgBouncer]:
    async with _running_bouncer(postgres, pool_size=12) as bouncer:
        yield bouncer


@pytest.fixture
async def proxied_bouncer(roomy_bouncer: PgBouncer) -> AsyncIterator[PgProxy]:
    """The client's socket to the pooler can go silent, and is counted: a proxy between them."""
    bouncer = roomy_bouncer
    proxy = PgProxy(
        Path("/nonexistent"),
        Path(tempfile.mkdtemp(prefix="sqpb")),
        upstream_tcp=("127.0.0.1", bouncer.port),
    )
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def pooled_sessions(database_url: str, proxied_bouncer: PgProxy) -> AsyncIterator[Sessions]:
    """Sessions through the proxy and the pooler, every server connection with the role's defaults."""
    # Before the pooler opens a server connection to this database, so all of
    # them start with the role's defaults.
    direct = create_engine(EngineOptions(url=database_url, pool_size=1, max_overflow=0))
    try:
        await apply_session_defaults(direct)
    finally:
        await direct.dispose()
    name = make_url(database_url).database or ""
    engine = create_engine(
        EngineOptions(url=proxied_bouncer.url(name), pool_size=6, max_overflow=0, pgbouncer=True)
    )
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.mark.parametrize("delivered", [True, False], ids=["answer-lost", "statement-lost"])
async def test_presses_on_silent_sockets_through_the_pooler(
    proxied_bouncer: PgProxy, pooled_sessions: Sessions, delivered: bool
) -> None:
    queue_ids = await seed_queued_items(pooled_sessions, 6)

    run = await presses_on_silent_sockets(
        pooled_sessions, proxied_bouncer, queue_ids, delivered=delivered
    )

    assert run.silenced == 6
    assert run.recorded == 6
    assert run.needed_a_repeat == 0
    assert run.longest_seconds < RECORDED_WITHIN_SECONDS
    [count] = await fetch_all(pooled_sessions, "SELECT count(*) AS n FROM posting_history")
    assert count.n == 6


async def test_a_vanished_transaction_behind_the_pooler_holds_the_item_for_seconds_only(
    database_url: str, proxied_bouncer: PgProxy, pooled_sessions: Sessions
) -> None:
    """Session settings don't stick behind the pooler: the role's default (0003) ends it."""
    [queue_id] = await seed_queued_items(pooled_sessions, 1)
    name = make_url(database_url).database or ""
    await vanish_holding_the_row(
        f"postgresql://postgres@/{name}?host={proxied_bouncer.socket_dir}",
        proxied_bouncer,
        queue_id,
    )

    started = asyncio.get_running_loop().time()
    outcome = await PressService(pooled_sessions).record(
        Press(queue_id, TEAM_CHAT, Verdict.POSTED, ALICE.identity)
    )

    assert outcome.kind is OutcomeKind.RECORDED
    assert asyncio.get_running_loop().time() - started < RECORDED_WITHIN_SECONDS
    [count] = await fetch_all(pooled_sessions, "SELECT count(*) AS n FROM posting_history")
    assert count.n == 1


async def test_a_press_costs_two_round_trips_through_the_pooler(
    proxied_bouncer: PgProxy, pooled_sessions: Sessions
) -> None:
    """No statement cache: prepare, then an execute that carries its own Parse (autocommit)."""
    warm_up, measured = await seed_queued_items(pooled_sessions, 2)
    service = PressService(pooled_sessions)
    alice = ALICE.identity
    await service.record(Press(warm_up, TEAM_CHAT, Verdict.POSTED, alice))  # connects
    before = proxied_bouncer.round_trips

    outcome = await service.record(Press(measured, TEAM_CHAT, Verdict.SKIPPED, alice))

    assert outcome.kind is OutcomeKind.RECORDED
    assert proxied_bouncer.round_trips - before == 2
