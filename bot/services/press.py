"""Recording a queue button press exactly once (docs/architecture.md §3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import Press
from db.engine import command_timeout
from db.errors import is_connection_loss
from db.repositories import PressRepository, PressState
from db.retry import Reread, RetryPolicy, run_with_retry
from db.vocabulary import HistoryStatus, PostingMethod, QueueStatus

logger = structlog.get_logger(__name__)

# How long one press statement may go unanswered before its socket counts as
# silent and the retry takes over (re-read first). A press runs in about 1 ms
# alone and well under 100 ms at C=100 (p99; see README), so this is never a
# loaded server mistaken for a dead one.
PRESS_STATEMENT_TIMEOUT_SECONDS = 1.5


class OutcomeKind(StrEnum):
    RECORDED = "recorded"  # this press wrote the history row
    ALREADY = "already"  # someone (maybe this user, earlier) acted first
    WRONG_CHAT = "wrong_chat"  # the item is queued in another chat
    BUSY = "busy"  # an Auto Post of this item is in progress
    GONE = "gone"  # no such item in flight and no history for it


@dataclass(frozen=True, slots=True)
class PressOutcome:
    kind: OutcomeKind
    status: HistoryStatus | None = None
    acted_by_name: str | None = None
    posting_method: PostingMethod | None = None
    instagram_media_id: str | None = None


def explain(state: PressState, press: Press, *, after_lost_connection: bool) -> PressOutcome | None:
    """What the state read after a lost race or a lost connection means; None: run it (again).

    After a lost connection, a history row matching this press is our own first
    attempt, whose COMMIT landed although its answer did not reach us.
    """
    if state.history_chat_id is not None and state.history_chat_id != press.chat_id:
        # Another chat's settled item: neither its result nor who pressed is ours to show.
        return PressOutcome(kind=OutcomeKind.WRONG_CHAT)
    if state.history_status is not None:
        ours = (
            after_lost_connection
            and state.acted_by_telegram_id == press.presser.telegram_user_id
            and state.history_status == press.status.history_status
            and state.posting_method == press.posting_method
        )
        return PressOutcome(
            kind=OutcomeKind.RECORDED if ours else OutcomeKind.ALREADY,
            status=state.history_status,
            acted_by_name=state.acted_by_name,
            posting_method=state.posting_method,
            instagram_media_id=state.instagram_media_id,
        )
    if state.queue_chat_id is None:
        return PressOutcome(kind=OutcomeKind.GONE)
    if state.queue_chat_id != press.chat_id:
        return PressOutcome(kind=OutcomeKind.WRONG_CHAT)
    if state.queue_status == QueueStatus.PUBLISHING and not press.completes_autopost:
        if after_lost_connection:
            return None  # run it; the claim itself decides whether the hold has expired
        return PressOutcome(kind=OutcomeKind.BUSY)
    return None


class PressService:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        retry_policy: RetryPolicy | None = None,
        *,
        statement_timeout_seconds: float = PRESS_STATEMENT_TIMEOUT_SECONDS,
    ) -> None:
        self._sessions = session_factory
        self._retry_policy = retry_policy
        self._timeout = statement_timeout_seconds

    @asynccontextmanager
    async def _repository(
        self, session: AsyncSession, *, first_use: bool = True
    ) -> AsyncIterator[PressRepository]:
        """The press repository on this session's connection, with the press timeout.

        In autocommit each statement runs alone: no BEGIN/COMMIT round trips
        (and no COMMIT whose answer could be lost). The option is set when the
        session first takes its connection, also inside the retry wrapper's
        `session.begin()` around the re-read, where BEGIN and COMMIT then cost
        nothing.
        """
        if first_use:
            connection = await session.connection(
                execution_options={"isolation_level": "AUTOCOMMIT"}
            )
        else:
            connection = await session.connection()
        async with command_timeout(connection, self._timeout):
            yield PressRepository(session)

    async def record(self, press: Press) -> PressOutcome:
        """Claim the item and write every effect in one statement; survive lost connections.

        The statement is atomic by itself, so it runs in autocommit: one round
        trip with the statement cache warm. A lost answer to it is the same
        ambiguous outcome as a lost COMMIT reply, settled by the re-read.
        Behind a transaction-mode pooler (no statement cache) it is two: the
        prepare, then an execute that carries its own Parse (the driver does so
        for the unnamed statement), so any server connection can run it.
        """

        # An earlier attempt lost its connection: its statement may have landed. A
        # deadlock's loser (run again too) is known not to have.
        connection_lost = False

        async def unit_of_work(session: AsyncSession) -> PressOutcome:
            nonlocal connection_lost
            later = connection_lost
            try:
                return await attempt(session, later)
            except Exception as error:
                connection_lost = connection_lost or is_connection_loss(error)
                raise

        async def attempt(session: AsyncSession, later: bool) -> PressOutcome:
            async with self._repository(session) as repository:
                record = await repository.record(press)
            if record is not None:
                return PressOutcome(
                    kind=OutcomeKind.RECORDED,
                    status=press.status.history_status,
                    acted_by_name=press.presser.display_name,
                    posting_method=press.posting_method,
                    instagram_media_id=press.instagram_media_id,
                )
            # Lost the race, or the item is not this chat's: a new statement
            # (so a new snapshot) sees what the winner committed.
            async with self._repository(session, first_use=False) as repository:
                state = await repository.state(press.queue_id)
            # After a lost connection the winner may be an earlier attempt of this very
            # press: its statement, orphaned on a silent socket, ran after our re-read.
            outcome = explain(state, press, after_lost_connection=later)
            if outcome is None and state.queue_status == QueueStatus.PUBLISHING:
                # The claim just refused it: an Auto Post holds it (begun while an
                # earlier attempt of this press was lost), not an abandoned one.
                outcome = PressOutcome(kind=OutcomeKind.BUSY)
            return outcome or PressOutcome(kind=OutcomeKind.GONE)

        async def recover(session: AsyncSession) -> PressOutcome | None:
            async with self._repository(session) as repository:
                state = await repository.state(press.queue_id)
            return explain(state, press, after_lost_connection=True)

        outcome = await run_with_retry(
            self._sessions,
            unit_of_work,
            repeat=Reread(recover),
            policy=self._retry_policy,
            operation=f"press.{press.status}",
        )
        logger.info(
            "press.outcome",
            queue_id=str(press.queue_id),
            status=press.status,
            outcome=outcome.kind.value,
            by=outcome.acted_by_name,
        )
        return outcome
