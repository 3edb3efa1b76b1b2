"""The async retry wrapper: later attempts after a lost connection, within a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.errors import DatabaseUnavailableError, is_connection_loss, is_rolled_back_by_server

logger = structlog.get_logger(__name__)

T = TypeVar("T")
UnitOfWork = Callable[[AsyncSession], Awaitable[T]]
Recovery = Callable[[AsyncSession], Awaitable[T | None]]


@dataclass(frozen=True, slots=True)
class Idempotent:
    """The unit may simply run again: a repeat after a landed COMMIT changes nothing.

    `because` says why (it only reads, it sets values, its inserts conflict on a
    key the first attempt wrote); it is there for the reader and the logs.
    """

    because: str


@dataclass(frozen=True, slots=True)
class Reread(Generic[T]):
    """Before any later attempt, `recover` reads what the earlier one left.

    A value settles the unit (our COMMIT landed after all, or someone else
    acted); None means nothing landed and the unit runs again.
    """

    recover: Recovery[T]


# Reruns of a unit the server rolled back (deadlock, serialization failure).
MAX_RERUNS_AFTER_ROLLBACK = 3


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long, and how many times, later attempts may try after a lost connection."""

    # No attempt starts later than this after the first one failed, so the user
    # hears back within a few seconds (plus at most one attempt's own timeout).
    reconnect_deadline_seconds: float = 4.0
    # Attempts that reached the unit of work (the first included); reconnect
    # waits before a later attempt reaches the server do not count.
    max_attempts: int = 8
    # Starts at zero: the next pooled connection may simply be a live one.
    backoff_seconds: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


async def _discard(session: AsyncSession) -> None:
    try:
        await session.invalidate()
    except Exception:  # the connection is already gone; nothing left to release
        logger.debug("db.invalidate_failed", exc_info=True)


async def _attempt(
    session_factory: async_sessionmaker[AsyncSession],
    unit_of_work: UnitOfWork[T],
    recover: Recovery[T] | None,
) -> tuple[bool, T]:
    """Run (recover, then) the unit of work in a fresh session.

    Returns (settled_by_recovery, result). A lost connection invalidates only
    this session's connection before the error propagates.
    """
    session = session_factory()
    try:
        if recover is not None:
            async with session.begin():
                settled = await recover(session)
            if settled is not None:
                return True, settled
        return False, await unit_of_work(session)
    except BaseException as exc:
        if is_connection_loss(exc):
            await _discard(session)
        raise
    finally:
        await session.close()


async def _wait_for_a_connection(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Check a connection out and back in: it connects when the pool has none alive.

    Without a re-read to do it, this is what lets the second attempt wait out a
    restarting server instead of spending itself on a refused connect. A live
    pooled connection costs no round trip.
    """
    engine = session_factory.kw.get("bind")
    if isinstance(engine, AsyncEngine):
        async with engine.connect():
            pass


async def run_with_retry(
    session_factory: async_sessionmaker[AsyncSession],
    unit_of_work: UnitOfWork[T],
    *,
    repeat: Idempotent | Reread[T],
    operation: str,
    policy: RetryPolicy | None = None,
) -> T:
    """Run `unit_of_work` in its own session; after a lost connection or a deadlock, run it again.

    `repeat` is required: every unit says how it is safe to run twice, since a
    lost connection can hide a COMMIT that landed.

    `unit_of_work` owns its transaction (it begins and commits, or runs one
    statement in autocommit). Every later attempt of a `Reread` unit starts with
    `recover` in a fresh session: when it returns a value (an earlier attempt's
    commit landed after all, or someone else acted) that value is the result and
    the unit of work is not repeated. Later attempts continue, with backoff,
    until the policy's deadline or attempt count; a restarting server refuses
    connections for a moment. Then `DatabaseUnavailableError`. Pool exhaustion
    surfaces as `DatabaseUnavailableError` at once: the checkout already waited
    its timeout, and another wait would only keep the user longer.
    """
    if not isinstance(repeat, Idempotent | Reread):
        raise TypeError(f"{operation}: say how the unit is safe to repeat (Idempotent or Reread)")
    policy = policy or RetryPolicy()
    loop = asyncio.get_running_loop()
    backoff = iter(policy.backoff_seconds)
    deadline: float | None = None  # set when the first attempt lost its connection
    attempts = 0  # attempts that reached the unit of work
    reruns = 0  # after the server rolled an attempt back (a deadlock's loser)
    while True:
        later = deadline is not None
        ran_unit_of_work = False

        async def counted(session: AsyncSession) -> T:
            nonlocal ran_unit_of_work
            ran_unit_of_work = True
            return await unit_of_work(session)

        # Only after a lost connection: a re-read takes what it finds for our landed
        # COMMIT, and after a deadlock we know that nothing of ours landed.
        recover = repeat.recover if later and isinstance(repeat, Reread) else None
        try:
            if later and recover is None:
                await _wait_for_a_connection(session_factory)
            settled, result = await _attempt(session_factory, counted, recover)
        except PoolTimeoutError as exc:
            logger.error("db.pool_exhausted", operation=operation, error=repr(exc))
            raise DatabaseUnavailableError(operation) from exc
        except Exception as exc:
            if is_rolled_back_by_server(exc):
                # A deadlock's loser: its transaction was rolled back whole, so it runs
                # again as it is; each costs the server's deadlock_timeout, so a few only.
                if reruns >= MAX_RERUNS_AFTER_ROLLBACK:
                    logger.error("db.retry_failed", operation=operation, error=repr(exc))
                    raise DatabaseUnavailableError(operation) from exc
                reruns += 1
                logger.warning(
                    "db.rolled_back_by_server",
                    operation=operation,
                    error=repr(exc),
                    rerun=reruns,
                )
                await asyncio.sleep(next(backoff, policy.backoff_seconds[-1]))
                continue
            if not is_connection_loss(exc):
                raise
            attempts += ran_unit_of_work
            if deadline is None:
                logger.warning(
                    "db.connection_lost", operation=operation, error=repr(exc), attempt=attempts
                )
                deadline = loop.time() + policy.reconnect_deadline_seconds
                continue
            delay = next(backoff, policy.backoff_seconds[-1])
            if attempts >= policy.max_attempts or loop.time() + delay > deadline:
                logger.error(
                    "db.retry_failed", operation=operation, error=repr(exc), attempt=attempts
                )
                raise DatabaseUnavailableError(operation) from exc
            logger.info(
                "db.retry_wait", operation=operation, error=repr(exc), delay=delay, attempt=attempts
            )
            await asyncio.sleep(delay)
            continue
        if settled:
            logger.info("db.retry_settled_by_reread", operation=operation, attempt=attempts + 1)
        elif later:
            logger.info("db.retry_succeeded", operation=operation, attempt=attempts + 1)
        return result


async def in_transaction(
    session_factory: async_sessionmaker[AsyncSession],
    work: UnitOfWork[T],
    *,
    repeat: Idempotent | Reread[T],
    operation: str,
) -> T:
    """`work` inside one transaction (BEGIN … COMMIT), through `run_with_retry`."""

    async def unit(session: AsyncSession) -> T:
        async with session.begin():
            return await work(session)

    return await run_with_retry(session_factory, unit, repeat=repeat, operation=operation)


async def in_idempotent_transaction(
    session_factory: async_sessionmaker[AsyncSession],
    work: UnitOfWork[T],
    *,
    operation: str,
    because: str,
) -> T:
    """`in_transaction` for a unit that is safe to repeat `because` (`Idempotent`)."""
    return await in_transaction(
        session_factory, work, repeat=Idempotent(because), operation=operation
    )
