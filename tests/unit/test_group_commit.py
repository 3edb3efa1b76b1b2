"""The group commit that records confirmed sends: batching, errors, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bot.services.batching import GroupCommit


class Ledger:
    """A write that records its batches and can be held open (all, or batch by batch) or fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.held_batches: set[int] = set()
        self.fail_with: Exception | None = None

    async def write(self, items: Sequence[int]) -> None:
        self.batches.append(list(items))
        await self.release.wait()
        while len(self.batches) - 1 in self.held_batches:
            await asyncio.sleep(0.01)
        if self.fail_with is not None:
            raise self.fail_with


def _held_writes(max_batch: int) -> tuple[Ledger, GroupCommit[int]]:
    """A group commit whose writes wait until the ledger is released."""
    ledger = Ledger()
    commit = GroupCommit(ledger.write, max_batch=max_batch)
    ledger.release.clear()
    return ledger, commit


async def test_items_submitted_while_a_batch_is_written_go_out_together_next() -> None:
    ledger, commit = _held_writes(max_batch=3)
    first = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0)
    others = [asyncio.create_task(commit.submit(n)) for n in (2, 3, 4, 5)]
    await asyncio.sleep(0)
    assert ledger.batches == [[1]]
    ledger.release.set()
    await asyncio.gather(first, *others)
    assert ledger.batches == [[1], [2, 3, 4], [5]]


async def test_each_caller_of_a_failed_batch_gets_its_error() -> None:
    ledger, commit = _held_writes(max_batch=10)
    ledger.fail_with = RuntimeError("database away")
    callers = [asyncio.create_task(commit.submit(n)) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    ledger.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [str(result) for result in results] == ["database away"] * 3
    assert ledger.batches == [[1], [2, 3]]


async def test_a_writer_cancelled_mid_write_hands_the_others_items_back() -> None:
    """Shutdown cancels the caller that writes: its item stays unwritten, the rest are written."""
    ledger = Ledger()
    commit = GroupCommit(ledger.write, max_batch=10)
    ledger.held_batches = {0, 1}
    first = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0)
    second, third = asyncio.create_task(commit.submit(2)), asyncio.create_task(commit.submit(3))
    await asyncio.sleep(0)
    ledger.held_batches = {1}
    await first
    while len(ledger.batches) < 2:
        await asyncio.sleep(0)
    assert ledger.batches == [[1], [2, 3]]  # second writes [2, 3] and hangs
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    await third
    assert ledger.batches == [[1], [2, 3], [3]]


async def test_a_lone_writer_cancelled_leaves_nothing_written_behind_its_back() -> None:
    ledger, commit = _held_writes(max_batch=10)
    alone = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0)
    alone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await alone
    ledger.release.set()
    await commit.submit(2)
    assert ledger.batches == [[1], [2]]
