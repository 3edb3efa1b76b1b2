"""Alembic environment. Runs on a connection handed over by db.migrate, or standalone."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    # `alembic` on the command line: same URL resolution and locking as the bot.
    from db.migrate import migration_transaction, standalone_connection

    async with standalone_connection() as connection, migration_transaction(connection):
        await connection.run_sync(_run)


connection = config.attributes.get("connection")
if context.is_offline_mode():
    _run_offline()
elif connection is not None:
    _run(connection)
else:
    asyncio.run(_run_standalone())
