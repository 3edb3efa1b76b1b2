"""DB_PGBOUNCER: the bot works behind a transaction-mode pooler (Neon's pooled endpoint)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.services.press import OutcomeKind, Press, PressService
from db.engine import EngineOptions, create_engine, create_session_factory
from db.repositories import TelegramIdentity
from tests.pgbouncer import PgBouncer, pgbouncer_binary
from tests.support import (
    TEAM_CHAT,
    PostgresHandle,
    fetch_all,
    seed_chat,
    seed_media,
    seed_queue_item,
)

pytestmark = pytest.mark.skipif(pgbouncer_binary() is None, reason="pgbouncer not installed")


@pytest.fixture
async def bouncer(postgres: PostgresHandle) -> AsyncIterator[PgBouncer]:
    if postgres.embedded is None:
        pytest.skip("fronts the embedded server")
    bouncer = PgBouncer(postgres.embedded.socket_dir, pool_size=2)
    await asyncio.to_thread(bouncer.start)
    yield bouncer
    await asyncio.to_thread(bouncer.stop)


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
                    status="posted",
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
