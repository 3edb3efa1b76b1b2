"""The async engine and the one session factory, built from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from db.errors import is_connection_loss


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """What the engine needs to know, independent of the bot's settings class."""

    url: str
    pool_size: int = 5
    max_overflow: int = 5
    pool_recycle_seconds: int = 240
    pool_pre_ping: bool = False
    connect_timeout_seconds: float = 5.0
    command_timeout_seconds: float = 10.0
    application_name: str = "storyqueue"
    pgbouncer: bool = False


# How long the server keeps a session idle in a transaction (client vanished).
IDLE_IN_TRANSACTION_TIMEOUT_MS = 5000


def _unnamed_statement() -> str:
    """The unnamed prepared statement: replaced by the next prepare, never closed.

    Uniquely named ones cost a Close round trip each after use (the driver
    closes them when garbage-collected). And with no statement cache the driver
    sends the unnamed statement's Parse again with its Bind, so an execute runs
    on whichever server connection the pooler picks, even outside a transaction.
    """
    return ""


def _connect_args(options: EngineOptions) -> dict[str, Any]:
    args: dict[str, Any] = {
        "timeout": options.connect_timeout_seconds,
        "command_timeout": options.command_timeout_seconds,
    }
    if options.pgbouncer:
        # A transaction-mode pooler hands each transaction to any server
        # connection, so a prepared statement must never be reused.
        args["statement_cache_size"] = 0
        args["prepared_statement_name_func"] = _unnamed_statement
        args["server_settings"] = {"application_name": options.application_name}
    else:
        args["server_settings"] = {
            "application_name": options.application_name,
            # A safety net: the server ends any session left idle in a transaction
            # (its client vanished) within seconds, releasing its row locks. Behind
            # a pooler the same default comes from migration 0003 (per role and database).
            "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS),
        }
    return args


def _discard_only_the_broken_connection(context: ExceptionContext) -> None:
    """Treat timeouts as lost connections, and never invalidate the whole pool."""
    if is_connection_loss(context.original_exception):
        context.is_disconnect = True
    if context.is_disconnect:
        context.invalidate_pool_on_disconnect = False


def _terminate_at_once(dbapi_connection: Any, record: Any, exception: BaseException | None) -> None:
    """Drop an invalidated connection's socket now.

    SQLAlchemy first tries a graceful close that waits up to 2 s, which a
    connection broken mid-operation always spends; the press would wait with it,
    holding a pool slot.
    """
    driver: Any = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and not driver.is_closed():
        driver.terminate()


def _replace_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """At checkout, swap a pooled connection the server already closed for a new one.

    After a restart or a terminated backend the driver knows the socket is gone
    (no round trip to find out); SQLAlchemy then reconnects this pool entry
    instead of handing out a dead connection.
    """
    driver: Any = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("connection was closed while idle in the pool")


def create_engine(options: EngineOptions) -> AsyncEngine:
    """Create the process's engine; call `dispose()` on shutdown."""
    url = options.url
    if options.pgbouncer and "prepared_statement_cache_size" not in url:
        url += ("&" if "?" in url else "?") + "prepared_statement_cache_size=0"
    engine = create_async_engine(
        url,
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        pool_recycle=options.pool_recycle_seconds,
        pool_pre_ping=options.pool_pre_ping,
        pool_timeout=options.connect_timeout_seconds,
        connect_args=_connect_args(options),
        # Bound values (Instagram tokens among them) stay out of error messages and logs.
        hide_parameters=True,
    )
    event.listen(engine.sync_engine, "handle_error", _discard_only_the_broken_connection)
    event.listen(engine.sync_engine, "invalidate", _terminate_at_once)
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The one session factory; sessions never expire objects on commit."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def command_timeout(
    connection: AsyncConnection, seconds: float | None
) -> AsyncIterator[AsyncConnection]:
    """Every command on `connection` inside the block gives up after `seconds` (None: never).

    The driver's command timeout is per connection; a press wants a shorter one
    (a silent socket is given up on quickly) and a migration waiting on another
    process's lock wants none. asyncpg reads it from the connection's
    configuration on every command, so it is swapped for the block.
    """
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    config = driver._config
    driver._config = config._replace(command_timeout=seconds)
    try:
        yield connection
    finally:
        driver._config = config
