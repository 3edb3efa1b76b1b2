"""The scheduler loop: find every due chat, claim its slot, hand the item to delivery.

One tick serves every chat. The chats due are found with one query and claimed in
batches; each claimed item's delivery runs as its own task, a few at a time (the
claims waiting their turn keep their leases), so a slow chat (a hanging upload, a
flood-wait) or a failing one never holds up the others. A
chat that refuses the bot (removed, banned) is reported once and backed off.
Delivery and stuck-row recovery live in bot.services.delivery.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from aiogram.exceptions import TelegramAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import NothingToSend, SendResult
from bot.services import heartbeat
from bot.services.clock import Clock, utc_now
from bot.services.delivery import Delivered, Delivery, DeliveryResult, GaveUp
from bot.services.notifier import ClaimedItem
from bot.services.periodic import every
from bot.services.slots import PostingSchedule
from db.repositories import (
    ChatSettingsRepository,
    LockRepository,
    MediaRepository,
    QueueRepository,
    SendingClaim,
)
from db.repositories.queue import ReturnedItem
from db.retry import Idempotent, Reread, in_transaction
from db.vocabulary import QueueStatus

logger = structlog.get_logger(__name__)

# Due chats claimed per transaction: one COMMIT for many, short row locks.
CLAIM_BATCH = 100
# Items tried for one slot when Telegram refuses them for good (each is set aside):
# the slot is not lost to a bad file, nor a tick to a library of them.
MAX_TRIES_PER_SLOT = 3


@dataclass
class _Trouble:
    """A chat that refuses the bot: skipped until `retry_at` (monotonic seconds)."""

    failures: int
    retry_at: float


@dataclass(frozen=True, eq=False)
class ChatBackoff:
    """Per-chat backoff for chats that refuse the bot; each chat is reported once."""

    _: KW_ONLY
    first_seconds: float = 60.0
    longest_seconds: float = 3600.0
    monotonic: Callable[[], float] = time.monotonic
    _troubles: dict[int, _Trouble] = field(init=False, default_factory=dict)

    def waiting(self, chat_id: int) -> bool:
        trouble = self._troubles.get(chat_id)
        return trouble is not None and self.monotonic() < trouble.retry_at

    def failed(self, chat_id: int, reason: str) -> None:
        trouble = self._troubles.get(chat_id)
        failures = 1 if trouble is None else trouble.failures + 1
        delay = min(self.first_seconds * 2 ** (failures - 1), self.longest_seconds)
        self._troubles[chat_id] = _Trouble(failures, self.monotonic() + delay)
        if trouble is None:
            logger.error(
                "scheduler.chat_unreachable", chat_id=chat_id, reason=reason, retry_in=delay
            )
        else:
            logger.debug("scheduler.chat_still_unreachable", chat_id=chat_id, retry_in=delay)

    def succeeded(self, chat_id: int) -> None:
        if self._troubles.pop(chat_id, None) is not None:
            logger.info("scheduler.chat_recovered", chat_id=chat_id)

    def reset(self, chat_id: int) -> None:
        """Telegram says the chat takes the bot again: its next due slot is not held back."""
        if self._troubles.pop(chat_id, None) is not None:
            logger.info("scheduler.chat_backoff_reset", chat_id=chat_id)


async def _topic_of(session: AsyncSession, chat_id: int) -> int | None:
    """The forum topic a chat's queue lives in."""
    chat = await ChatSettingsRepository(session).get(chat_id)
    return None if chat is None else chat.message_thread_id


# How long a stopping scheduler waits for its cancelled deliveries to hand back the
# claims they never sent (one short transaction each, side by side).
HAND_BACK_SECONDS = 3.0


class Scheduler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        delivery: Delivery,
        *,
        chat_backoff: ChatBackoff,
        data_dir: Path,
        interval_seconds: float = 60.0,
        clock: Clock = utc_now,
        concurrency: int = 4,
        chat_ids: tuple[int, ...] | Callable[[], tuple[int, ...]] | None = None,
    ) -> None:
        self._sessions = sessions
        self.delivery = delivery
        self.chat_backoff = chat_backoff
        # The chats this process serves (TELEGRAM_CHAT_ID, followed to where Telegram moved
        # them: a callable is asked each tick); None: every chat in the database.
        self._chat_ids = chat_ids
        self._data_dir = data_dir
        self._interval = interval_seconds
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        # chat id -> its claim-and-deliver task (a chat with one running is not claimed
        # again), or queue id -> the resend of a stuck row.
        self._busy: dict[int | uuid.UUID, asyncio.Task[None]] = {}
        self._without_media: set[int] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set; a failing tick is logged and the loop goes on."""
        logger.info("scheduler.started", interval=self._interval)
        try:
            await every(
                self._interval, stop, self._start_tick, log=logger, failed="scheduler.tick_failed"
            )
            await self.drain()
        finally:
            busy = list(self._busy.values())
            for task in busy:
                task.cancel()
            if busy:
                # Bounded: a delivery cancelled before its send hands its claim back first.
                await asyncio.wait(busy, timeout=HAND_BACK_SECONDS)
        logger.info("scheduler.stopped")

    async def tick(self) -> None:
        """One whole tick: every due chat claimed and its delivery finished."""
        await self._start_tick()
        await self.drain()

    async def drain(self) -> None:
        """Wait for the deliveries in flight."""
        while self._busy:
            await asyncio.gather(*self._busy.values(), return_exceptions=True)

    async def _start_tick(self) -> None:
        await asyncio.to_thread(heartbeat.beat, self._data_dir)
        for item in await self.delivery.take_stuck():
            # Keyed by the row, not the chat: a taken row always gets its send or notice.
            if item.never_sent:
                logger.info("scheduler.sending_released", queue_id=str(item.queue_id))
                self._spawn(
                    item.queue_id,
                    self._deliver(item, in_slot=True),
                    claimed=item.queue_id,
                    unstarted_release=True,
                )
                continue
            logger.warning("scheduler.settling_stuck", queue_id=str(item.queue_id))
            self._spawn(
                item.queue_id, self.delivery.settle_unconfirmed(item), claimed=item.queue_id
            )
        due = [
            chat_id
            for chat_id in await self.due_chats()
            if chat_id not in self._busy and not self.chat_backoff.waiting(chat_id)
        ]
        for start in range(0, len(due), CLAIM_BATCH):
            for item in await self.claim_due(due[start : start + CLAIM_BATCH]):
                self._spawn(
                    item.chat_id,
                    self._deliver(item, in_slot=True),
                    claimed=item.queue_id,
                    unstarted_release=True,
                )
        await self.return_unpressed()
        await self.delete_expired_locks()

    def _spawn(
        self,
        key: int | uuid.UUID,
        work: Coroutine[Any, Any, object],
        *,
        claimed: uuid.UUID,
        unstarted_release: bool = False,
    ) -> None:
        """Run `work` when a delivery slot is free; with `unstarted_release`, a shutdown
        before it started hands the claim back (never sent: no notice for it later)."""
        if key in self._busy:
            # Still at it since an earlier tick (a slow upload, a flood-wait).
            logger.debug("scheduler.still_busy", key=str(key))
            work.close()
            return

        async def bounded() -> None:
            try:
                # The tick claimed the row already: its lease is renewed while it waits
                # behind the other chats' deliveries (delivery renews it from there on).
                try:
                    async with self.delivery.hold(claimed):
                        await self._slots.acquire()
                except asyncio.CancelledError:
                    work.close()
                    if unstarted_release:
                        await self.delivery.release_unsent(claimed)
                    raise
                try:
                    await work
                finally:
                    self._slots.release()
            except Exception:
                logger.exception("scheduler.chat_failed", key=str(key))
            finally:
                self._busy.pop(key, None)

        self._busy[key] = asyncio.create_task(bounded())

    async def _wait_outside_slot(self, seconds: float) -> None:
        """A backoff or flood-wait holds no delivery slot: the other chats' sends go on."""
        self._slots.release()
        try:
            await asyncio.sleep(seconds)
        finally:
            # Shielded: a cancelled wait still ends up holding the slot its caller releases.
            await asyncio.shield(self._slots.acquire())

    async def due_chats(self) -> list[int]:
        """The running chats that owe a slot now, found with one query."""
        now = self._clock()

        async def read(session: AsyncSession) -> list[int]:
            among = self._chat_ids() if callable(self._chat_ids) else self._chat_ids
            chats = await ChatSettingsRepository(session).schedules_of_active(among)
            return [
                chat.telegram_chat_id
                for chat in chats
                if PostingSchedule.of(chat).owed_slot(now, chat.last_post_sent_at) is not None
            ]

        return await in_transaction(
            self._sessions, read, repeat=Idempotent("it only reads"), operation="scheduler.chats"
        )

    async def fill_owed_slot(self, chat_id: int) -> bool:
        """Claim and send one item if the chat owes a slot now; True when one was sent."""
        claimed = await self.claim_due([chat_id])
        if not claimed:
            return False
        return isinstance(await self._deliver(claimed[0]), Delivered)

    async def claim_due(self, chat_ids: list[int]) -> list[ClaimedItem]:
        """Claim the owed slot of each chat, in one transaction (one COMMIT for them all).

        Each chat row is locked and its slot computed again under the lock, so two
        processes never fill one slot twice; a chat another process is claiming
        right now (SKIP LOCKED) is left to it.
        """
        now = self._clock()
        # Made here, so a retry can find the rows a lost COMMIT reply hid.
        queue_ids = {chat_id: uuid.uuid4() for chat_id in chat_ids}

        async def claim(session: AsyncSession) -> list[ClaimedItem]:
            # A few statements for the whole batch, whatever its size: one locks the
            # chats, one picks each chat's next eligible item, one inserts the rows,
            # one marks the slots filled.
            chats = ChatSettingsRepository(session)
            slots: dict[int, datetime] = {}
            topics: dict[int, int | None] = {}
            for chat in await chats.lock_many(chat_ids):
                slot = PostingSchedule.of(chat).owed_slot(now, chat.last_post_sent_at)
                if not chat.is_paused and slot is not None:
                    slots[chat.telegram_chat_id] = slot
                    topics[chat.telegram_chat_id] = chat.message_thread_id
            picked = await MediaRepository(session).next_eligible_many(list(slots), now)
            for chat_id in slots.keys() - picked.keys():
                if chat_id not in self._without_media:
                    self._without_media.add(chat_id)
                    logger.info("scheduler.nothing_eligible", chat_id=chat_id)
            self._without_media.difference_update(picked)
            wanted = [
                SendingClaim(queue_ids[chat_id], media.id, chat_id, slots[chat_id])
                for chat_id, media in picked.items()
            ]
            written = await QueueRepository(session).claim_many_for_sending(
                wanted, lease=self.delivery.stuck_after
            )
            claimed = [claim for claim in wanted if claim.queue_id in written]
            # The slot is filled whatever happens to the send: never two items for one slot.
            await chats.fill_slots({claim.chat_id: claim.slot for claim in claimed})
            return [
                ClaimedItem.of(
                    claim.queue_id,
                    picked[claim.chat_id],
                    message_thread_id=topics[claim.chat_id],
                )
                for claim in claimed
            ]

        async def landed(session: AsyncSession) -> list[ClaimedItem] | None:
            """Rows with our own ids exist only if our COMMIT landed."""
            rows = await QueueRepository(session).get_many(list(queue_ids.values()))
            if not rows:
                return None
            media = await MediaRepository(session).get_many([row.media_item_id for row in rows])
            found = [
                ClaimedItem.of(
                    row.id,
                    media[row.media_item_id],
                    row.send_attempts,
                    message_thread_id=await _topic_of(session, row.chat_id),
                )
                for row in rows
            ]
            logger.info("scheduler.claim_found_by_reread", count=len(found))
            return found

        return await in_transaction(
            self._sessions, claim, repeat=Reread(landed), operation="scheduler.claim"
        )

    def _claimed_by_us(
        self, queue_id: uuid.UUID
    ) -> Callable[[AsyncSession], Awaitable[ClaimedItem | None]]:
        """The re-read of a claim: the row with our own id exists only if our COMMIT landed."""

        async def recover(session: AsyncSession) -> ClaimedItem | None:
            row = await QueueRepository(session).get(queue_id)
            if row is None or row.status != QueueStatus.SENDING:
                return None
            media = await MediaRepository(session).get(row.media_item_id)
            assert media is not None
            logger.info("scheduler.claim_found_by_reread", queue_id=str(queue_id))
            topic = await _topic_of(session, row.chat_id)
            return ClaimedItem.of(row.id, media, row.send_attempts, message_thread_id=topic)

        return recover

    async def _deliver(self, item: ClaimedItem, *, in_slot: bool = False) -> DeliveryResult:
        """Deliver the item; one set aside (refused for good) hands its slot to the next one."""
        wait = self._wait_outside_slot if in_slot else asyncio.sleep
        tries = 1
        while True:
            result = await self.delivery.deliver(item, wait=wait)
            if isinstance(result, GaveUp) and result.chat_unreachable:
                self.chat_backoff.failed(item.chat_id, result.reason)
            elif isinstance(result, Delivered):
                self.chat_backoff.succeeded(item.chat_id)
            if not (isinstance(result, GaveUp) and result.set_aside) or tries >= MAX_TRIES_PER_SLOT:
                return result
            # A scheduled slot respects a pause that came meanwhile; /next never did.
            replacement = await self._claim_replacement(
                item.chat_id, item.media_item_id, respect_pause=in_slot
            )
            if replacement is None:
                return result
            tries += 1
            logger.info(
                "scheduler.slot_refilled",
                chat_id=item.chat_id,
                set_aside=str(item.media_item_id),
                next=str(replacement.media_item_id),
                tries=tries,
            )
            item = replacement

    async def _claim_replacement(
        self, sent_to: int, given_up: uuid.UUID, *, respect_pause: bool
    ) -> ClaimedItem | None:
        """The next eligible item, claimed for the slot a set-aside item just gave up."""
        now = self._clock()
        queue_id = uuid.uuid4()

        async def claim(session: AsyncSession) -> ClaimedItem | None:
            # The given-up item's chat now: a group Telegram upgraded during the send moved it.
            media_now = await MediaRepository(session).get(given_up)
            chat_id = sent_to if media_now is None else media_now.chat_id
            chat = await ChatSettingsRepository(session).get_for_update(chat_id, skip_locked=False)
            if chat is None or (respect_pause and chat.is_paused):
                return None
            media = await MediaRepository(session).next_eligible(chat_id, now)
            if media is None:
                return None
            claimed = await QueueRepository(session).claim_for_sending(
                media.id, chat_id, now, queue_id, lease=self.delivery.stuck_after
            )
            if claimed is None:
                return None
            return ClaimedItem.of(claimed, media, message_thread_id=chat.message_thread_id)

        return await in_transaction(
            self._sessions,
            claim,
            repeat=Reread(self._claimed_by_us(queue_id)),
            operation="scheduler.refill",
        )

    async def send_now(self, chat_id: int) -> SendResult:
        """/next: the next eligible item now, ignoring the window and the pause."""
        now = self._clock()
        queue_id = uuid.uuid4()

        async def claim(session: AsyncSession) -> ClaimedItem | SendResult:
            media_repository = MediaRepository(session)
            chats = ChatSettingsRepository(session)
            chat = await chats.get_for_update(chat_id, skip_locked=False)
            media = await media_repository.next_eligible(chat_id, now)
            claimed = None
            if media is not None:
                claimed = await QueueRepository(session).claim_for_sending(
                    media.id, chat_id, now, queue_id, lease=self.delivery.stuck_after
                )
            if media is None or claimed is None:
                return await self._why_nothing(session, chat_id)
            if chat is not None:
                slot = PostingSchedule.of(chat).slot_filled_by_manual_send(now)
                if slot is not None and (
                    chat.last_post_sent_at is None or slot > chat.last_post_sent_at
                ):
                    await chats.update(chat_id, last_post_sent_at=slot)
            topic = None if chat is None else chat.message_thread_id
            return ClaimedItem.of(claimed, media, message_thread_id=topic)

        reread: Reread[ClaimedItem | SendResult] = Reread(self._claimed_by_us(queue_id))
        claimed = await in_transaction(
            self._sessions,
            claim,
            repeat=reread,
            operation="scheduler.send_now",
        )
        if isinstance(claimed, SendResult):
            return claimed
        result = await self._deliver(claimed)
        if isinstance(result, Delivered):
            return SendResult(sent=True, topic=claimed.message_thread_id)
        return SendResult(sent=False, error=result.reason)

    @staticmethod
    async def _why_nothing(session: AsyncSession, chat_id: int) -> SendResult:
        media = MediaRepository(session)
        total, locked = await media.library_counts(chat_id)
        set_aside = len(await media.set_aside_items(chat_id))
        queued = len(await QueueRepository(session).in_flight(chat_id))
        if total == 0:
            reason = NothingToSend.EMPTY_LIBRARY
        elif queued > 0 and queued >= total - locked - set_aside:
            reason = NothingToSend.ALL_QUEUED
        else:
            reason = NothingToSend.ALL_LOCKED
        return SendResult(
            sent=False,
            reason=reason,
            queued=queued,
            locked=locked,
            total=total,
            set_aside=set_aside,
        )

    async def return_unpressed(self) -> list[ReturnedItem]:
        """Sent items nobody pressed within their chat's lifetime go back to the library.

        Each chat hears it in one line, in the queue's topic.
        """
        now = self._clock()
        planned: list[ReturnedItem] = []

        async def take(session: AsyncSession) -> list[ReturnedItem]:
            planned[:] = await QueueRepository(session).return_unpressed(now)
            return list(planned)

        async def landed(session: AsyncSession) -> list[ReturnedItem] | None:
            """Our rows gone means our DELETE's COMMIT landed (nobody can press a taken row)."""
            if not planned:
                return None
            rows = await QueueRepository(session).get_many([item.queue_id for item in planned])
            return None if rows else list(planned)

        returned = await in_transaction(
            self._sessions, take, repeat=Reread(landed), operation="scheduler.return_unpressed"
        )
        by_chat: dict[int, list[ReturnedItem]] = {}
        for item in returned:
            by_chat.setdefault(item.chat_id, []).append(item)
        for chat_id, items in by_chat.items():
            logger.info("queue.returned_unpressed", chat_id=chat_id, count=len(items))
            try:
                await self.delivery.notifier.send_returned_to_library(
                    chat_id,
                    [item.file_name for item in items],
                    items[0].lifetime_days,
                    items[0].message_thread_id,
                )
            except TelegramAPIError as error:
                logger.warning("queue.return_line_failed", chat_id=chat_id, error=str(error))
        return returned

    async def delete_expired_locks(self) -> int:
        async def purge(session: AsyncSession) -> int:
            return await LockRepository(session).delete_expired(self._clock())

        deleted = await in_transaction(
            self._sessions,
            purge,
            repeat=Idempotent("deleting expired locks again deletes nothing"),
            operation="scheduler.locks",
        )
        if deleted:
            logger.info("locks.expired_deleted", count=deleted)
        return deleted
