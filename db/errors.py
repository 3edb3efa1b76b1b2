"""Domain errors the rest of the application sees instead of driver errors."""

from __future__ import annotations


class DatabaseUnavailableError(Exception):
    """The database could not be reached, even after the retry."""


# SQLSTATEs that mean the server ended or refused the connection: class 08
# (connection exception) and the operator-intervention shutdowns, including
# "the database system is starting up" while a server restarts.
_LOST_CONNECTION_STATES = ("57P01", "57P02", "57P03")


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error anywhere in the exception's chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str):
            return state
        current = getattr(current, "orig", None) or current.__cause__
    return None


def means_lost_connection(exc: BaseException) -> bool:
    state = sqlstate_of(exc)
    return state is not None and (state.startswith("08") or state in _LOST_CONNECTION_STATES)
