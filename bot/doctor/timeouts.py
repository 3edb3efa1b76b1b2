"""How long the doctor waits: short, so a dead server or a silent socket costs seconds."""

from __future__ import annotations

NETWORK_TIMEOUT_SECONDS = 5.0


def network() -> float:
    """One request's timeout (read when the check runs, so a test may shorten it)."""
    return NETWORK_TIMEOUT_SECONDS


def whole_check() -> float:
    """A check of one or two requests; httpx's and asyncpg's timeouts are per read, so a peer
    trickling bytes never trips them: this bounds the whole check."""
    return 2 * NETWORK_TIMEOUT_SECONDS + 1


def one_call() -> float:
    """A single Bot API call, with a second of slack over its own timeout."""
    return NETWORK_TIMEOUT_SECONDS + 1
