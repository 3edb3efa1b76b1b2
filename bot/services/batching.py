"""Group commit: writes that arrive while one batch is being written go out together next."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Batches `write` calls without adding latency.

    The first caller writes its item at once, alone. Items submitted while that
    write runs wait for it; then one of their callers writes them together (up to
    `max_batch`). Each caller returns when the batch holding its item has been
    written, or raises what that write raised, so it sees exactly what a write of
    its own would have told it. The writing is always done by a caller, never by a
    background task: a caller cancelled while it writes (shutdown) stops its
    write, as a write of its own would stop, and hands the others' items back to
    be written by one of them.
    """

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[None]], max_batch: int) -> None:
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    async def submit(self, item: T) -> None:
        """Return once `item` is written; raise what its batch's write raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (item, done)
        self._waiting.append(entry)
        try:
            while not done.done():
                if self._idle.is_set():
                    await self._write_next_batch()
                else:
                    await self._idle.wait()
        except asyncio.CancelledError:
            if entry in self._waiting:
                self._waiting.remove(entry)
            raise
        done.result()

    async def _write_next_batch(self) -> None:
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        self._idle.clear()
        try:
            await self._write([item for item, _ in batch])
        except asyncio.CancelledError:
            self._waiting[:0] = batch  # unwritten: first in line for the next writer
            raise
        except Exception as error:
            for _, done in batch:
                _settle(done, error)
        else:
            for _, done in batch:
                _settle(done, None)
        finally:
            self._idle.set()


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if error is None:
        done.set_result(None)
        return
    done.set_exception(error)
    # Its caller may have been cancelled meanwhile: its writer logged the error,
    # asyncio need not report it again as "never retrieved".
    done.add_done_callback(lambda future: future.exception())
