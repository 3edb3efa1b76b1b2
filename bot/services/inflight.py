"""An admin drops or resends one item in flight, from /queue's buttons.

Each button carries the message the item was at when /queue listed it, and acts
only while the row is still `sent` there: a double tap, a stale list or a tap
whose answer was lost finds the row changed and acts on nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.clock import Clock, utc_now
from bot.services.delivery import Delivered, Delivery
from bot.services.notifier import ClaimedItem
from db.models import PostingHistory
from db.repositories import ChatSettingsRepository, MediaRepository, QueueRepository
from db.repositories.queue import InFlightRepository
from db.retry import Reread, in_transaction
from db.vocabulary import QueueStatus

logger = structlog.get_logger(__name__)


class InFlightOutcome(StrEnum):
    DROPPED = "dropped"
    RESENT = "resent"
    # The resend left, but Telegram did not confirm it: the team got a notice with buttons.
    RESEND_UNCONFIRMED = "resend_unconfirmed"
    # Someone pressed, dropped or resent it since /queue listed it.
    CHANGED = "changed"
    BEING_SENT = "being_sent"


@dataclass(frozen=True)
class InFlightService:
    sessions: async_sessionmaker[AsyncSession]
    delivery: Delivery
    clock: Clock = utc_now

    async def drop(
        self, queue_id: uuid.UUID, chat_id: int, message_id: int | None
    ) -> InFlightOutcome:
        """Back to the library, no history row (nothing happened to it)."""

        async def drop(session: AsyncSession) -> InFlightOutcome:
            dropped = await InFlightRepository(session).drop(queue_id, chat_id, message_id)
            return InFlightOutcome.DROPPED if dropped else await _why_not(session, queue_id)

        async def recover(session: AsyncSession) -> InFlightOutcome | None:
            # Gone without an outcome: our DELETE landed (or an identical drop did).
            if await QueueRepository(session).get(queue_id) is not None:
                return None
            return await _dropped_or_acted(session, queue_id)

        outcome = await in_transaction(
            self.sessions, drop, repeat=Reread(recover), operation="inflight.drop"
        )
        logger.info("inflight.drop", queue_id=str(queue_id), outcome=outcome.value)
        return outcome

    async def resend(
        self, queue_id: uuid.UUID, chat_id: int, message_id: int | None
    ) -> InFlightOutcome:
        """Send the item again (its new message replaces the old); at most once per tap."""
        stamp = self.clock()

        async def claim(session: AsyncSession) -> ClaimedItem | InFlightOutcome:
            if not await InFlightRepository(session).claim_resend(
                queue_id, chat_id, message_id, stamp, lease=self.delivery.stuck_after
            ):
                return await _why_not(session, queue_id)
            return await _claimed_item(session, queue_id)

        async def recover(session: AsyncSession) -> ClaimedItem | InFlightOutcome | None:
            row = await QueueRepository(session).get(queue_id)
            if row is None or row.claimed_at != stamp:
                return None
            return await _claimed_item(session, queue_id)

        reread: Reread[ClaimedItem | InFlightOutcome] = Reread(recover)
        claimed = await in_transaction(
            self.sessions, claim, repeat=reread, operation="inflight.resend"
        )
        if isinstance(claimed, InFlightOutcome):
            return claimed
        result = await self.delivery.deliver(claimed)
        logger.info("inflight.resend", queue_id=str(queue_id), result=type(result).__name__)
        if isinstance(result, Delivered):
            return InFlightOutcome.RESENT
        return InFlightOutcome.RESEND_UNCONFIRMED


async def _claimed_item(session: AsyncSession, queue_id: uuid.UUID) -> ClaimedItem:
    row = await QueueRepository(session).get(queue_id)
    assert row is not None
    media = await MediaRepository(session).get(row.media_item_id)
    assert media is not None  # the foreign key cascades
    topic = await ChatSettingsRepository(session).topic_of(row.chat_id)
    # Counted as the second send: the first message is in the chat with its buttons, so a
    # resend Telegram refuses still leaves the row actionable (never recorded as failed).
    return ClaimedItem.of(row.id, media, 2, message_thread_id=topic)


async def _why_not(session: AsyncSession, queue_id: uuid.UUID) -> InFlightOutcome:
    row = await QueueRepository(session).get(queue_id)
    if row is not None and row.status != QueueStatus.SENT:
        return InFlightOutcome.BEING_SENT
    return InFlightOutcome.CHANGED


async def _dropped_or_acted(session: AsyncSession, queue_id: uuid.UUID) -> InFlightOutcome:
    acted = await session.scalar(
        select(PostingHistory.id).where(PostingHistory.queue_item_id == queue_id)
    )
    return InFlightOutcome.CHANGED if acted is not None else InFlightOutcome.DROPPED
