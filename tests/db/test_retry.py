"""The retry wrapper, with mocks where the exact attempt count is the point."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageCaption
from aiogram.types import Update
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from bot.domain import Press
from bot.presentation.keyboards import QueueAction, QueueCallback, queue_keyboard
from bot.services.press import OutcomeKind, PressService
from db.errors import DatabaseUnavailableError
from db.repositories import PressRepository
from db.retry import Idempotent, Reread, RetryPolicy, in_transaction, run_with_retry
from db.vocabulary import Verdict
from tests.helpers.fake_telegram_session import callback_update, queue_message
from tests.helpers.support import (
    ALICE,
    BOB,
    TEAM_CHAT,
    Person,
    TestApp,
    fetch_all,
    press_update,
    seed_chat,
    seed_queued,
)

FAST = RetryPolicy(reconnect_deadline_seconds=1.0, backoff_seconds=(0.0, 0.01))


def lost_connection() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionResetError("connection reset by peer"))


class FlakyRecord:
    """Wraps PressRepository.record: the first `failures` calls raise, the rest run for real."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        failures: int,
        error: Exception,
        before_failing: Any = None,
    ) -> None:
        self.attempts = 0
        self._failures = failures
        self._error = error
        self._before_failing = before_failing
        real = PressRepository.record
        flaky = self

        async def record(repository: PressRepository, press: Press) -> Any:
            flaky.attempts += 1
            if flaky.attempts <= flaky._failures:
                if flaky._before_failing is not None:
                    await flaky._before_failing()
                raise flaky._error
            return await real(repository, press)

        monkeypatch.setattr(PressRepository, "record", record)


class AlwaysFailing:
    """A unit of work that raises `error` on every attempt, counting the attempts."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.attempts = 0

    async def __call__(self, session: Any) -> None:
        self.attempts += 1
        raise self.error


def _make_press(
    queue_id: uuid.UUID, status: Verdict = Verdict.POSTED, who: Person = ALICE
) -> Press:
    return Press(queue_id=queue_id, chat_id=TEAM_CHAT, status=status, presser=who.identity)


async def _history_count(app: TestApp) -> int:
    return len(await fetch_all(app.sessions, "SELECT 1 FROM posting_history"))


async def test_lost_connection_then_success_runs_twice_and_records_once(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, queue_id = await seed_queued(app.sessions)
    flaky = FlakyRecord(monkeypatch, failures=1, error=lost_connection())

    outcome = await PressService(app.sessions, FAST).record(_make_press(queue_id))

    assert flaky.attempts == 2
    assert outcome.kind is OutcomeKind.RECORDED
    assert await _history_count(app) == 1


async def test_a_bug_is_never_retried(app: TestApp, monkeypatch: pytest.MonkeyPatch) -> None:
    _, queue_id = await seed_queued(app.sessions)
    flaky = FlakyRecord(monkeypatch, failures=1, error=ValueError("bug"))

    with pytest.raises(ValueError, match="bug"):
        await PressService(app.sessions, FAST).record(_make_press(queue_id))
    assert flaky.attempts == 1
    assert await _history_count(app) == 0


def _posted_pressed(queue_id: uuid.UUID, caption: str) -> Update:
    """Alice pressing ✅ Posted on the queue message showing `caption`, without 🤖 Auto Post."""
    return press_update(queue_id, QueueAction.POSTED, caption=caption, instagram=False)


async def test_two_lost_connections_propagate_and_keep_the_buttons(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, queue_id = await seed_queued(app.sessions)
    flaky = FlakyRecord(monkeypatch, failures=99, error=lost_connection())
    keyboard = queue_keyboard(queue_id, instagram=False)

    await app.feed(_posted_pressed(queue_id, "Hi\n\n📄 a.jpg"))

    assert flaky.attempts == RetryPolicy().max_attempts
    assert await _history_count(app) == 0
    assert len(await fetch_all(app.sessions, "SELECT 1 FROM posting_queue")) == 1
    [edit] = app.telegram.of(EditMessageCaption)
    assert edit.caption == "Hi\n\n📄 a.jpg\n\n❌ Couldn't record that — please press again"
    assert edit.reply_markup == keyboard
    assert [a.text for a in app.telegram.of(AnswerCallbackQuery)] == [
        "❌ Couldn't record that — please press again"
    ]

    # Pressing again (the database is back) records it.
    monkeypatch.undo()
    await app.feed(_posted_pressed(queue_id, edit.caption))
    assert await _history_count(app) == 1
    assert app.telegram.of(EditMessageCaption)[-1].caption == "Hi\n\n📄 a.jpg\n\n✅ Posted by Alice"


async def test_retry_finds_someone_else_acted(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, queue_id = await seed_queued(app.sessions)
    service = PressService(app.sessions, FAST)

    async def bob_skips_meanwhile() -> None:
        monkeypatch.undo()
        assert (
            await service.record(_make_press(queue_id, Verdict.SKIPPED, BOB))
        ).kind is OutcomeKind.RECORDED

    flaky = FlakyRecord(
        monkeypatch, failures=1, error=lost_connection(), before_failing=bob_skips_meanwhile
    )
    outcome = await service.record(_make_press(queue_id))

    assert flaky.attempts == 1  # the re-read settled it; the unit of work did not run again
    assert (outcome.kind, outcome.status, outcome.acted_by_name) == (
        OutcomeKind.ALREADY,
        "skipped",
        "Bob",
    )
    assert await _history_count(app) == 1


async def test_confirmed_reject_retries_the_same_way(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, queue_id = await seed_queued(app.sessions)
    flaky = FlakyRecord(monkeypatch, failures=1, error=lost_connection())
    data = QueueCallback(action=QueueAction.CONFIRM_REJECT, queue_id=queue_id).pack()
    message = queue_message(TEAM_CHAT, 500, "Hi\n\n📄 a.jpg\n\n🚫 Reject this item for good?")

    await app.feed(callback_update(data, message, ALICE.user))

    assert flaky.attempts == 2
    rows = await fetch_all(app.sessions, "SELECT status FROM posting_history")
    assert [row.status for row in rows] == ["rejected"]
    locks = await fetch_all(app.sessions, "SELECT locked_until FROM media_locks")
    assert [lock.locked_until for lock in locks] == [None]
    assert (
        app.telegram.of(EditMessageCaption)[-1].caption == "Hi\n\n📄 a.jpg\n\n🚫 Rejected by Alice"
    )


@pytest.mark.parametrize(
    ("error", "policy", "raised", "attempts"),
    [
        pytest.param(
            IntegrityError("INSERT", {}, Exception("duplicate key")),
            FAST,
            IntegrityError,
            1,
            id="a-constraint-violation-is-never-retried",
        ),
        pytest.param(
            ConnectionRefusedError("server restarting"),
            FAST,
            DatabaseUnavailableError,
            FAST.max_attempts,
            id="a-refused-connection-is-tried-at-most-max-attempts",
        ),
        pytest.param(
            PoolTimeoutError("QueuePool limit of size 5 overflow 5 reached"),
            None,  # the default policy
            DatabaseUnavailableError,
            1,
            id="pool-exhaustion-is-database-unavailable-and-not-retried",
        ),
    ],
)
async def test_a_unit_that_always_fails(
    app: TestApp,
    error: Exception,
    policy: RetryPolicy | None,
    raised: type[Exception],
    attempts: int,
) -> None:
    unit = AlwaysFailing(error)

    with pytest.raises(raised):
        await run_with_retry(
            app.sessions, unit, repeat=Idempotent("a test"), operation="test", policy=policy
        )
    assert unit.attempts == attempts


async def test_the_deadline_bounds_the_attempts(app: TestApp) -> None:
    always_refused = AlwaysFailing(ConnectionRefusedError("server restarting"))

    policy = RetryPolicy(reconnect_deadline_seconds=0.3, max_attempts=100, backoff_seconds=(0.1,))
    with pytest.raises(DatabaseUnavailableError):
        await run_with_retry(
            app.sessions, always_refused, repeat=Idempotent("a test"), operation="t", policy=policy
        )
    assert 2 <= always_refused.attempts <= 4


async def test_every_later_attempt_of_a_reread_unit_starts_with_the_reread(app: TestApp) -> None:
    steps: list[str] = []

    async def unit(session: Any) -> str:
        steps.append("unit")
        if steps.count("unit") <= 3:
            raise lost_connection()
        return "done"

    async def recover(session: Any) -> str | None:
        steps.append("reread")
        return None

    result = await run_with_retry(
        app.sessions, unit, repeat=Reread(recover), operation="test", policy=FAST
    )

    assert result == "done"
    assert steps == ["unit", "reread", "unit", "reread", "unit", "reread", "unit"]


async def test_retry_that_finds_the_row_gone_shows_who_acted(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, queue_id = await seed_queued(app.sessions)

    async def bob_skips_meanwhile() -> None:
        monkeypatch.undo()
        await PressService(app.sessions, FAST).record(_make_press(queue_id, Verdict.SKIPPED, BOB))

    FlakyRecord(
        monkeypatch, failures=1, error=lost_connection(), before_failing=bob_skips_meanwhile
    )

    await app.feed(_posted_pressed(queue_id, "Hi\n\n📄 a.jpg"))

    assert [a.text for a in app.telegram.of(AnswerCallbackQuery)] == ["⏭️ Already skipped by Bob"]
    [edit] = app.telegram.of(EditMessageCaption)
    assert edit.caption == "Hi\n\n📄 a.jpg\n\n⏭️ Skipped by Bob"
    assert edit.reply_markup is None
    assert await _history_count(app) == 1


async def test_a_unit_that_does_not_say_how_it_repeats_is_refused(app: TestApp) -> None:
    async def work(session: Any) -> None:
        raise AssertionError("must not run")

    with pytest.raises(TypeError, match="safe to repeat"):
        await run_with_retry(app.sessions, work, repeat=None, operation="test")  # type: ignore[arg-type]


async def test_the_loser_of_a_real_deadlock_runs_again_and_both_land(app: TestApp) -> None:
    """Two transactions lock two chats' rows in opposite orders: PostgreSQL aborts one
    (40P01); the loser runs again, and both changes land once each."""
    other_chat = TEAM_CHAT - 1
    await seed_chat(app.sessions)
    await seed_chat(app.sessions, other_chat)
    per_day = "SELECT telegram_chat_id, posts_per_day FROM chat_settings ORDER BY 1"
    before = {
        row.telegram_chat_id: row.posts_per_day for row in await fetch_all(app.sessions, per_day)
    }
    both_hold_their_first = asyncio.Barrier(2)
    runs: list[str] = []

    def crossing(name: str, first: int, second: int) -> Any:
        async def work(session: Any) -> None:
            runs.append(name)
            bump = "UPDATE chat_settings SET posts_per_day = posts_per_day + 1"
            await session.execute(text(f"{bump} WHERE telegram_chat_id = :id"), {"id": first})
            if runs.count(name) == 1:
                await both_hold_their_first.wait()
            await session.execute(text(f"{bump} WHERE telegram_chat_id = :id"), {"id": second})

        return work

    await asyncio.gather(
        *(
            in_transaction(app.sessions, work, repeat=Idempotent("a test"), operation="test")
            for work in (crossing("a", TEAM_CHAT, other_chat), crossing("b", other_chat, TEAM_CHAT))
        )
    )
    # A loser ran again (its rerun may lose once more before the winner's COMMIT).
    assert len(runs) > 2 and set(runs) == {"a", "b"}
    after = {
        row.telegram_chat_id: row.posts_per_day for row in await fetch_all(app.sessions, per_day)
    }
    assert after == {chat: count + 2 for chat, count in before.items()}


def _deadlock() -> DBAPIError:
    return DBAPIError("UPDATE", {}, asyncpg.exceptions.DeadlockDetectedError("deadlock"))


async def test_a_deadlocks_loser_runs_again_without_a_reread(app: TestApp) -> None:
    """Nothing of the loser landed: a re-read would take what it finds for its own work."""
    calls: list[str] = []

    async def unit(session: Any) -> str:
        calls.append("unit")
        if len(calls) == 1:
            raise _deadlock()
        return "ours"

    async def recover(session: Any) -> str | None:
        calls.append("reread")
        return "taken for ours"

    result = await run_with_retry(
        app.sessions, unit, repeat=Reread(recover), operation="test", policy=FAST
    )
    assert (result, calls) == ("ours", ["unit", "unit"])


async def test_a_unit_that_keeps_losing_deadlocks_gives_up_after_three_reruns(
    app: TestApp,
) -> None:
    calls = 0

    async def unit(session: Any) -> None:
        nonlocal calls
        calls += 1
        raise _deadlock()

    with pytest.raises(DatabaseUnavailableError):
        await run_with_retry(
            app.sessions, unit, repeat=Idempotent("a test"), operation="test", policy=FAST
        )
    assert calls == 4
