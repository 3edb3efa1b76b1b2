"""The one classifier for lost connections: each driver exception, lost or not. No database."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from db.errors import is_connection_loss


def _pg(cls: type[asyncpg.PostgresError], message: str = "x") -> asyncpg.PostgresError:
    return cls(message)


def _wrapped(cls: type[DBAPIError], orig: BaseException, invalidated: bool = False) -> DBAPIError:
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)  # type: ignore[arg-type]


CASES: list[tuple[str, BaseException, bool]] = [
    # The server ended or refused the connection (SQLSTATE class 08, 57P0x, 53300).
    ("admin shutdown 57P01", _pg(asyncpg.exceptions.AdminShutdownError), True),
    ("crash shutdown 57P02", _pg(asyncpg.exceptions.CrashShutdownError), True),
    ("starting up 57P03", _pg(asyncpg.exceptions.CannotConnectNowError), True),
    ("too many connections 53300", _pg(asyncpg.exceptions.TooManyConnectionsError), True),
    ("connection does not exist 08003", _pg(asyncpg.exceptions.ConnectionDoesNotExistError), True),
    ("connection failure 08006", _pg(asyncpg.exceptions.ConnectionFailureError), True),
    ("protocol left mid-operation", asyncpg.exceptions.InternalClientError("x"), True),
    ("driver interface error", asyncpg.InterfaceError("connection is closed"), True),
    ("reset by peer", ConnectionResetError("reset"), True),
    ("refused", ConnectionRefusedError("refused"), True),
    ("broken pipe", BrokenPipeError(), True),
    ("command timeout (silent socket)", TimeoutError(), True),
    ("no route", OSError(113, "No route to host"), True),
    # SQLAlchemy's wrappers: judged by what they wrap.
    ("wrapped reset", _wrapped(OperationalError, ConnectionResetError("reset")), True),
    (
        "wrapped shutdown",
        _wrapped(OperationalError, _pg(asyncpg.exceptions.AdminShutdownError)),
        True,
    ),
    ("wrapped interface error", _wrapped(InterfaceError, Exception("closed")), True),
    ("invalidated by the engine hook", _wrapped(DBAPIError, Exception("gone"), True), True),
    # The statement failed; the connection is fine. Never retried.
    ("unique violation", _pg(asyncpg.exceptions.UniqueViolationError), False),
    (
        "wrapped unique violation",
        _wrapped(IntegrityError, _pg(asyncpg.exceptions.UniqueViolationError)),
        False,
    ),
    ("syntax error", _pg(asyncpg.exceptions.PostgresSyntaxError), False),
    ("statement timeout 57014", _pg(asyncpg.exceptions.QueryCanceledError), False),
    (
        "wrapped statement timeout",
        _wrapped(OperationalError, _pg(asyncpg.exceptions.QueryCanceledError)),
        False,
    ),
    ("serialization failure", _pg(asyncpg.exceptions.SerializationError), False),
    ("lock not available", _pg(asyncpg.exceptions.LockNotAvailableError), False),
    # Pool exhaustion: every connection is alive and busy (surfaces as unavailable).
    ("pool checkout timeout", PoolTimeoutError("QueuePool limit reached"), False),
    # Bugs.
    ("value error", ValueError("bug"), False),
    ("key error", KeyError("bug"), False),
]


@pytest.mark.parametrize(("name", "error", "lost"), CASES, ids=[case[0] for case in CASES])
def test_classifies_driver_errors(name: str, error: BaseException, lost: bool) -> None:
    assert is_connection_loss(error) is lost


def test_a_loss_raised_from_another_error_is_found_in_the_chain() -> None:
    error = RuntimeError("while reading")
    error.__cause__ = ConnectionResetError("reset")
    assert is_connection_loss(error)
