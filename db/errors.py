"""Domain errors the rest of the application sees instead of driver errors.

`is_connection_loss` is the one place that decides whether a driver error means
the connection (not the statement) failed: the engine's error hook and the retry
wrapper both ask it. `is_rolled_back_by_server` tells the retry wrapper that the
server aborted a transaction whole (a deadlock), so running it again is safe.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bot.domain import UnavailableError


class DatabaseUnavailableError(UnavailableError):
    """The database could not be reached, even after the retry."""


# SQLSTATEs that mean the server ended or refused the connection: class 08
# (connection exception) and the operator-intervention shutdowns, including
# "the database system is starting up" while a server restarts, and "too many
# connections" (53300), a refused connect on which nothing ran.
_LOST_CONNECTION_STATES = ("57P01", "57P02", "57P03", "53300")

# Driver errors raised without a SQLSTATE when the socket failed under a command:
# the connection closed mid-command, or the protocol was left mid-operation
# (asyncpg's InternalClientError) because the server vanished under it.
_LOST_CONNECTION_TYPES: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    # Refused, reset or unreachable while connecting or mid-command; the connect
    # and command timeouts, which stand for a connection that went silent.
    OSError,
    TimeoutError,
)


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error anywhere in the exception's chain."""
    for current in _chain(exc):
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, then what it wraps (SQLAlchemy's `orig`, `__cause__`), without cycles."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return chain


def means_lost_connection(exc: BaseException) -> bool:
    """True when the server's SQLSTATE says it ended or refused the connection."""
    state = sqlstate_of(exc)
    return state is not None and (state.startswith("08") or state in _LOST_CONNECTION_STATES)


# SQLSTATEs with which the server rolled the whole transaction back: a deadlock,
# or a serialization failure. Nothing of it landed, so it may simply run again.
_ROLLED_BACK_STATES = ("40P01", "40001")


def is_rolled_back_by_server(exc: BaseException) -> bool:
    """True when the server aborted the transaction (deadlock, serialization): nothing landed."""
    return sqlstate_of(exc) in _ROLLED_BACK_STATES


def is_connection_loss(exc: BaseException) -> bool:
    """True when `exc` means the connection (not the statement) failed.

    A statement the server rejected (a constraint, a syntax error, a cancelled
    query) is not a loss: its SQLSTATE says so, and it is never retried. Pool
    exhaustion (`sqlalchemy.exc.TimeoutError`) is not one either: every
    connection is alive and busy.
    """
    if means_lost_connection(exc):
        return True
    if sqlstate_of(exc) is not None:
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return any(isinstance(link, _LOST_CONNECTION_TYPES) for link in _chain(exc))
