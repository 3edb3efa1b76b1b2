"""Run Alembic migrations on the application's engine, once across processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.engine import command_timeout

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# pg_advisory_lock key shared by every storyqueue process ("sq-migr" in ASCII).
MIGRATION_LOCK_KEY = 0x73712D6D69677200


def alembic_config() -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current_revision)


def _run_command(connection: Connection, action: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


@asynccontextmanager
async def migration_transaction(connection: AsyncConnection) -> AsyncIterator[None]:
    """One transaction under a transaction-scoped advisory lock, for the whole migration.

    A second process waits on the lock (with no command timeout: a long migration
    is not a dead server), then finds the schema at its target and does nothing.
    Being one transaction, it also holds behind a transaction-mode pooler, where
    a session-level lock could be taken and released on different server
    connections; and a migration that fails leaves nothing half-done. The bot
    and the `alembic` command line both migrate inside it.
    """
    async with command_timeout(connection, None), connection.begin():
        # The server-side defaults (migration 0003, and the engine's own) are for the
        # bot's short statements, not for a schema change, for waiting on one, or for
        # the Python a migration runs between its statements (Alembic loading scripts,
        # a data migration), which the idle-in-transaction timeout would cut off.
        for setting in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
            await connection.execute(text(f"SET LOCAL {setting} = 0"))
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        )
        yield


async def _locked(connection: AsyncConnection, action: str, revision: str) -> None:
    async with migration_transaction(connection):
        await connection.run_sync(_run_command, action, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to call from several processes at once."""
    async with engine.connect() as connection:
        await _locked(connection, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.connect() as connection:
        await _locked(connection, "downgrade", revision)


@asynccontextmanager
async def standalone_connection() -> AsyncIterator[AsyncConnection]:
    """A connection for the `alembic` command line, resolved like the bot's."""
    from bot.config import load_settings
    from db.embedded import EmbeddedPostgres
    from db.engine import EngineOptions, create_engine

    settings = load_settings()
    embedded = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        url = embedded.start()
    engine = create_engine(EngineOptions(url=url, pool_size=1, max_overflow=0))
    try:
        async with engine.connect() as connection:
            yield connection
            await connection.commit()
    finally:
        await engine.dispose()
        if embedded is not None:
            embedded.stop()
