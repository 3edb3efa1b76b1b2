"""The scheduler loop: fill each chat's slots, deliver, recover what a crash left behind."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import structlog
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services import heartbeat
from bot.services.notifier import MediaFileMissingError, Notification, Notifier, sent_file_id
from bot.services.slots import PostingSchedule
from db.models import MediaItem
from db.repositories import (
    ChatSettingsRepository,
    HistoryRepository,
    LockRepository,
    MediaRepository,
    QueueRepository,
)
from db.retry import Idempotent, run_with_retry

logger = structlog.get_logger(__name__)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class NothingToSend(StrEnum):
    EMPTY_LIBRARY = "empty_library"
    ALL_LOCKED = "all_locked"
    ALL_QUEUED = "all_queued"


@dataclass(frozen=True, slots=True)
class SendResult:
    sent: bool
    reason: NothingToSend | None = None
    queued: int = 0
    locked: int = 0
    total: int = 0
    error: str | None = None


def _notification(queue_id: uuid.UUID, media: MediaItem) -> Notification:
    return Notification(
        queue_id=queue_id,
        chat_id=media.chat_id,
        media_item_id=media.id,
        file_path=media.file_path,
        file_name=media.file_name,
        media_kind=media.media_kind,
        mime_type=media.mime_type,
        category=media.category,
        caption=media.caption,
        telegram_file_id=media.telegram_file_id,
    )


class Scheduler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notifier: Notifier,
        *,
        data_dir: Path,
        interval_seconds: float = 60.0,
        clock: Clock = utc_now,
        send_backoff_seconds: tuple[float, ...] = (1.0, 5.0),
        stuck_after: timedelta = timedelta(minutes=5),
    ) -> None:
        self._sessions = sessions
        self._notifier = notifier
        self._data_dir = data_dir
        self._interval = interval_seconds
        self._clock = clock
        self._send_backoff = send_backoff_seconds
        self._stuck_after = stuck_after

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set; a failing tick is logged and the loop goes on."""
        logger.info("scheduler.started", interval=self._interval)
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                logger.exception("scheduler.tick_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
        logger.info("scheduler.stopped")

    async def tick(self) -> None:
        await asyncio.to_thread(heartbeat.beat, self._data_dir)
        await self.recover_stuck()
        for chat_id in await self._active_chats():
            await self.fill_owed_slot(chat_id)
        await self.delete_expired_locks()

    async def _active_chats(self) -> list[int]:
        async def read(session: AsyncSession) -> list[int]:
            async with session.begin():
                return await ChatSettingsRepository(session).active_chat_ids()

        return await run_with_retry(
            self._sessions, read, repeat=Idempotent("it only reads"), operation="scheduler.chats"
        )

    async def fill_owed_slot(self, chat_id: int) -> bool:
        """Claim and send one item if the chat owes a slot now; True when one was sent."""
        now = self._clock()

        async def claim(session: AsyncSession) -> Notification | None:
            async with session.begin():
                chats = ChatSettingsRepository(session)
                # SKIP LOCKED: another process handling this chat right now wins the slot.
                chat = await chats.get_for_update(chat_id, skip_locked=True)
                if chat is None or chat.is_paused:
                    return None
                slot = PostingSchedule.of(chat).owed_slot(now, chat.last_post_sent_at)
                if slot is None:
                    return None
                media = await MediaRepository(session).next_eligible(chat_id, now)
                if media is None:
                    logger.info("scheduler.nothing_eligible", chat_id=chat_id)
                    return None
                queue_id = await QueueRepository(session).claim_for_sending(media.id, chat_id, slot)
                if queue_id is None:
                    return None
                await chats.update(chat_id, last_post_sent_at=slot)
                return _notification(queue_id, media)

        item = await run_with_retry(
            self._sessions,
            claim,
            repeat=Idempotent("TODO(#11): a landed claim is found only by the stuck-row sweep"),
            operation="scheduler.claim",
        )
        if item is None:
            return False
        return await self.deliver(item) is None

    async def send_now(self, chat_id: int) -> SendResult:
        """/next: the next eligible item now, ignoring the window and the pause."""
        now = self._clock()

        async def claim(session: AsyncSession) -> Notification | SendResult:
            async with session.begin():
                media_repository = MediaRepository(session)
                chats = ChatSettingsRepository(session)
                chat = await chats.get_for_update(chat_id, skip_locked=False)
                media = await media_repository.next_eligible(chat_id, now)
                queue_id = None
                if media is not None:
                    queue_id = await QueueRepository(session).claim_for_sending(
                        media.id, chat_id, now
                    )
                if media is None or queue_id is None:
                    return await self._why_nothing(session, chat_id)
                if chat is not None:
                    slot = PostingSchedule.of(chat).slot_filled_by_manual_send(now)
                    if slot is not None and (
                        chat.last_post_sent_at is None or slot > chat.last_post_sent_at
                    ):
                        await chats.update(chat_id, last_post_sent_at=slot)
                return _notification(queue_id, media)

        claimed = await run_with_retry(
            self._sessions,
            claim,
            repeat=Idempotent("TODO(#11): a landed claim is found only by the stuck-row sweep"),
            operation="scheduler.send_now",
        )
        if isinstance(claimed, SendResult):
            return claimed
        error = await self.deliver(claimed)
        return SendResult(sent=error is None, error=error)

    @staticmethod
    async def _why_nothing(session: AsyncSession, chat_id: int) -> SendResult:
        total, locked = await MediaRepository(session).library_counts(chat_id)
        queued = len(await QueueRepository(session).in_flight(chat_id))
        if total == 0:
            reason = NothingToSend.EMPTY_LIBRARY
        elif queued > 0 and queued >= total - locked:
            reason = NothingToSend.ALL_QUEUED
        else:
            reason = NothingToSend.ALL_LOCKED
        return SendResult(sent=False, reason=reason, queued=queued, locked=locked, total=total)

    async def deliver(self, item: Notification) -> str | None:
        """Send a claimed item, retrying transient Telegram failures with backoff.

        Returns None once sent, or why the item was given up.
        Each retry is counted on the queue row first, so a send that reached
        Telegram although we saw an error is a repeat the queue knows about.
        """
        delays = iter(self._send_backoff)
        while True:
            try:
                message = await self._notifier.send(item)
            except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter) as error:
                delay = next(delays, None)
                if delay is None:
                    return await self._give_up(item, f"Telegram kept failing: {error}")
                if isinstance(error, TelegramRetryAfter):
                    delay = max(delay, float(error.retry_after))
                logger.warning(
                    "notify.retry", queue_id=str(item.queue_id), delay=delay, error=str(error)
                )
                await asyncio.sleep(delay)
                await self._count_attempt(item.queue_id)
            except (MediaFileMissingError, TelegramAPIError, OSError) as error:
                return await self._give_up(item, str(error))
            else:
                await self._record_sent(item, message.message_id, sent_file_id(message))
                return None

    async def _count_attempt(self, queue_id: uuid.UUID) -> None:
        async def bump(session: AsyncSession) -> None:
            async with session.begin():
                await QueueRepository(session).reclaim(queue_id)

        await run_with_retry(
            self._sessions,
            bump,
            repeat=Idempotent("TODO(#11): a repeat counts the attempt twice"),
            operation="scheduler.count_attempt",
        )

    async def _record_sent(self, item: Notification, message_id: int, file_id: str | None) -> None:
        async def record(session: AsyncSession) -> None:
            async with session.begin():
                await QueueRepository(session).mark_sent(item.queue_id, message_id)
                if file_id and file_id != item.telegram_file_id:
                    await MediaRepository(session).set_telegram_file_id(item.media_item_id, file_id)

        await run_with_retry(
            self._sessions,
            record,
            repeat=Idempotent("it sets the message id and status to the same values"),
            operation="scheduler.record_sent",
        )
        logger.info(
            "notify.sent",
            queue_id=str(item.queue_id),
            message_id=message_id,
            uploaded=item.telegram_file_id is None,
        )

    async def _give_up(self, item: Notification, error: str) -> str:
        """A `failed` history row and the item freed, in one transaction."""

        async def fail(session: AsyncSession) -> None:
            async with session.begin():
                released = await QueueRepository(session).release(item.queue_id)
                if released is None:
                    return
                await HistoryRepository(session).record_failed_send(
                    media_item_id=item.media_item_id,
                    chat_id=item.chat_id,
                    queue_created_at=released.created_at,
                    scheduled_for=released.scheduled_for,
                    error_message=error,
                )

        await run_with_retry(
            self._sessions,
            fail,
            repeat=Idempotent("the history row is written only with the queue row it deletes"),
            operation="scheduler.give_up",
        )
        logger.error("notify.failed", queue_id=str(item.queue_id), error=error)
        return error

    async def recover_stuck(self) -> int:
        """Rows left in `sending` by a crash: one more send, or give up after a repeat."""
        older_than = self._clock() - self._stuck_after

        async def take(session: AsyncSession) -> tuple[list[Notification], list[Notification]]:
            retry: list[Notification] = []
            abandon: list[Notification] = []
            async with session.begin():
                queue = QueueRepository(session)
                for row in await queue.stuck_sending(older_than):
                    media = await MediaRepository(session).get(row.media_item_id)
                    assert media is not None
                    item = _notification(row.id, media)
                    if row.send_attempts >= 2:
                        abandon.append(item)
                    else:
                        await queue.reclaim(row.id)
                        retry.append(item)
            return retry, abandon

        retry, abandon = await run_with_retry(
            self._sessions,
            take,
            repeat=Idempotent("TODO(#11): a repeat counts the attempt twice"),
            operation="scheduler.stuck",
        )
        for item in abandon:
            await self._give_up(item, "never confirmed as sent after a repeat")
        for item in retry:
            logger.warning("scheduler.resending_stuck", queue_id=str(item.queue_id))
            await self.deliver(item)
        return len(retry) + len(abandon)

    async def delete_expired_locks(self) -> int:
        async def purge(session: AsyncSession) -> int:
            async with session.begin():
                return await LockRepository(session).delete_expired(self._clock())

        deleted = await run_with_retry(
            self._sessions,
            purge,
            repeat=Idempotent("deleting expired locks again deletes nothing"),
            operation="scheduler.locks",
        )
        if deleted:
            logger.info("locks.expired_deleted", count=deleted)
        return deleted
