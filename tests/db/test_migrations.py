"""The migrations build the schema, undo it, and match the models."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from db import migrate
from db.engine import EngineOptions, create_engine
from db.models import Base

TABLES = {
    "chat_settings",
    "users",
    "media_items",
    "posting_queue",
    "posting_history",
    "media_locks",
    "user_interactions",
    "instagram_accounts",
    "story_results",
}


async def _tables(url: str) -> set[str]:
    engine = create_engine(EngineOptions(url=url, pool_size=1, max_overflow=0))
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


async def test_upgrade_then_downgrade_then_upgrade(empty_database_url: str) -> None:
    engine = create_engine(EngineOptions(url=empty_database_url, pool_size=1, max_overflow=0))
    try:
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
        assert await _tables(empty_database_url) >= TABLES

        await migrate.downgrade(engine, "base")
        assert await migrate.current_revision(engine) is None
        assert await _tables(empty_database_url) & TABLES == set()

        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_migrations(database_url: str) -> None:
    engine = create_engine(EngineOptions(url=database_url, pool_size=1, max_overflow=0))
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_diff)
    finally:
        await engine.dispose()
    assert differences == []


async def test_concurrent_migrations_run_once(empty_database_url: str) -> None:
    engines = [
        create_engine(EngineOptions(url=empty_database_url, pool_size=1, max_overflow=0))
        for _ in range(3)
    ]
    try:
        await asyncio.gather(*(migrate.upgrade(engine) for engine in engines))
        await migrate.upgrade(engines[0])  # a second run is a no-op
        assert await migrate.current_revision(engines[0]) == migrate.head_revision()
    finally:
        for engine in engines:
            await engine.dispose()


async def test_migrating_leaves_logging_alone(empty_database_url: str) -> None:
    import logging

    ours = logging.getLogger("bot.services.press")
    root_handlers = list(logging.getLogger().handlers)
    root_level = logging.getLogger().level
    engine = create_engine(EngineOptions(url=empty_database_url, pool_size=1, max_overflow=0))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    assert logging.getLogger().handlers == root_handlers
    assert logging.getLogger().level == root_level
    assert not ours.disabled  # logging.config.fileConfig would have disabled it


async def test_a_slow_migration_outlives_the_idle_transaction_timeout(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot's sessions are ended after seconds idle in a transaction; a migration's is not.

    Between its statements a migration runs Python (Alembic loading scripts, a data
    migration computing values): the server must not end its session meanwhile.
    """
    import time

    import db.engine

    monkeypatch.setattr(db.engine, "IDLE_IN_TRANSACTION_TIMEOUT_MS", 100)
    run_command = migrate._run_command

    def slowly(connection: Connection, action: str, revision: str) -> None:
        time.sleep(0.5)  # idle in the migration's transaction, as a slow step is
        run_command(connection, action, revision)

    monkeypatch.setattr(migrate, "_run_command", slowly)
    engine = create_engine(EngineOptions(url=empty_database_url, pool_size=1, max_overflow=0))
    try:
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()


async def test_two_alembic_command_lines_at_once_migrate_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    """`alembic upgrade head` locks like the bot: a second one waits, then finds head."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DB_")},
        "DATABASE_URL": empty_database_url,
        "PYTHONPATH": str(migrate.PROJECT_ROOT),
    }
    ini = str(migrate.PROJECT_ROOT / "alembic.ini")

    async def upgrade() -> tuple[int, bytes]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "alembic",
            "-c",
            ini,
            "upgrade",
            "head",
            cwd=tmp_path,  # no developer's .env
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 120)
        return process.returncode or 0, output

    results = await asyncio.gather(upgrade(), upgrade())
    assert [code for code, _ in results] == [0, 0], results
    engine = create_engine(EngineOptions(url=empty_database_url, pool_size=1, max_overflow=0))
    try:
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()
