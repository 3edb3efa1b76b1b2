"""Delivering a claimed item to its chat, and recovering the rows a crash left in `sending`.

A send has three outcomes, not two. Telegram said yes (Delivered), Telegram said
no (a known failure: the item is freed and a `failed` history row written), or
nobody knows (a timeout, a reset or a 5xx after the request left): the message
may be in the chat with its buttons, so the row is never deleted nor recorded as
failed. It is resent at most once, with the attempt counted on the row; a press
on either message settles it. If that does not settle it, the row is kept as
`sent` without a message id and the team gets a short notice (at most once per
row) carrying the same buttons.

A row whose sender's lease ran out (the process died) may have been sent, even
confirmed: the stuck-row sweep never sends it again, it gives it the notice.

A refusal about the file itself (or a missing file) also sets the item aside and
tells the team once (docs/architecture.md §6).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta

import structlog
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.send_budget import watch_departure
from bot.services.batching import GroupCommit
from bot.services.notifier import ClaimedItem, MediaFileMissingError, Notifier, sent_file_id
from bot.telegram_retry import at_most_once, never_sent
from db.errors import DatabaseUnavailableError
from db.repositories import (
    ChatSettingsRepository,
    HistoryRepository,
    MediaRepository,
    QueueRepository,
)
from db.retry import Reread, in_idempotent_transaction, in_transaction
from db.vocabulary import QueueStatus

logger = structlog.get_logger(__name__)


# A send that may have arrived is repeated at most once: two messages at worst.
MAX_UNANSWERED_SENDS = 2


@dataclass(frozen=True, slots=True)
class Delivered:
    message_id: int


@dataclass(frozen=True, slots=True)
class GaveUp:
    reason: str
    # An attempt may have reached the chat: the row was kept, no `failed` history.
    maybe_delivered: bool = False
    # The chat itself refuses the bot (removed, banned, gone): back off the chat.
    chat_unreachable: bool = False
    # Refused for good for the item's own sake: it is set aside, the slot may take another.
    set_aside: bool = False


DeliveryResult = Delivered | GaveUp

# Bad Request answers about the chat or the bot's rights there, not about the file.
CHAT_LEVEL_REFUSALS = (
    "chat not found",
    "not enough rights",
    "have no rights",
    "chat_write_forbidden",
    "chat_restricted",
    "need administrator rights",
    "topic_closed",
    "topic_deleted",
    "message thread not found",
    "group chat was upgraded",
    "peer_id_invalid",
    "channel_private",
    "chat_admin_required",
    "chat_send_",
    "user_banned_in_channel",
    "bot is not a member",
    "chat_id is empty",
)
# Reading a file failed for the file's own sake (gone, not a file, not allowed), not
# because the process ran out of descriptors or the disk hiccuped.
FILE_LEVEL_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ELOOP}
)


def _chat_refuses(error: TelegramAPIError) -> bool:
    if isinstance(error, TelegramForbiddenError | TelegramMigrateToChat | TelegramNotFound):
        return True
    message = error.message.lower()
    return isinstance(error, TelegramBadRequest) and any(
        phrase in message for phrase in CHAT_LEVEL_REFUSALS
    )


def _refuses_the_media(error: TelegramAPIError) -> bool:
    """A 400 or 413 about the file itself (IMAGE_PROCESS_FAILED, wrong file identifier…)."""
    return isinstance(error, TelegramBadRequest | TelegramEntityTooLarge) and not _chat_refuses(
        error
    )


def _file_is_bad(error: Exception) -> bool:
    """A missing or unreadable file, as opposed to a passing fault of the machine."""
    return isinstance(error, MediaFileMissingError) or (
        isinstance(error, OSError) and error.errno in FILE_LEVEL_ERRNOS
    )


@dataclass(frozen=True, slots=True)
class _Released:
    """What giving up did: freed the row (False: someone else had), set the item aside."""

    freed: bool
    # When this send set its item aside; None when it did not.
    set_aside_at: datetime | None = None


def _may_have_arrived(error: TelegramAPIError) -> bool:
    """A timeout, a reset or a 5xx once the connection was made: Telegram may have acted."""
    return isinstance(error, TelegramNetworkError | TelegramServerError) and not never_sent(error)


@dataclass(frozen=True, slots=True)
class _SentMessage:
    """A send Telegram confirmed, to be recorded with the others confirmed meanwhile."""

    queue_id: uuid.UUID
    message_id: int
    media_item_id: uuid.UUID
    # Telegram's id for the uploaded file, when it is new (the next send reuses it).
    new_file_id: str | None


# Confirmed sends recorded in one statement at most; the budget's 30 sends a
# second rarely fill one.
SENT_BATCH_MAX = 200


@dataclass(frozen=True)
class Delivery:
    """Sends claimed items to their chats; takes back the rows a crash left in `sending`."""

    sessions: async_sessionmaker[AsyncSession]
    notifier: Notifier
    _: KW_ONLY
    # The wait before each repeat of a send; when they run out, the send gives up.
    backoff_seconds: tuple[float, ...] = (1.0, 5.0)
    # The lease a sender stores on its row (expiry = the database's now() + this);
    # a `sending` row whose lease ran out was left by a crash.
    stuck_after: timedelta = timedelta(minutes=5)
    # How long a confirmed send's message id is written for, past the database's
    # normal retry deadline: losing it would make the row look unsent.
    record_patience: timedelta = timedelta(minutes=10)
    record_backoff_seconds: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
    # Moves a chat's rows to the supergroup Telegram upgraded it to (ChatDirectory.follow);
    # answers the new chat's queue topic.
    follow_migration: Callable[[int, int], Awaitable[int | None]] | None = None

    # Sends confirmed while one batch is being recorded are recorded together next.
    _sent_ledger: GroupCommit[_SentMessage] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        ledger = GroupCommit(self._record_sent_batch, SENT_BATCH_MAX)
        object.__setattr__(self, "_sent_ledger", ledger)

    @property
    def _lease_renewal(self) -> float:
        """Renewed well before another process's sweep would call the row stuck."""
        return max(self.stuck_after.total_seconds() / 3, 0.05)

    async def deliver(
        self, item: ClaimedItem, *, wait: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> DeliveryResult:
        """Send a claimed item, retrying what Telegram refused or never answered.

        While it runs (waits for Telegram, a flood-wait, a backoff) the row's claim
        is renewed, so no other process's stuck-row sweep sends it meanwhile.
        `wait` sleeps between attempts (the scheduler's gives up its slot meanwhile).
        Cancelled (shutdown) while its first send still waited for the send budget,
        the claim is released: the next process sends it, with no notice.
        """
        with watch_departure() as departure:
            try:
                async with self.hold(item.queue_id):
                    return await self._deliver(item, wait)
            except asyncio.CancelledError:
                if departure.nothing_left and item.attempt == 1:
                    await self.release_unsent(item.queue_id)
                raise

    async def release_unsent(self, queue_id: uuid.UUID) -> None:
        """Hand back a claim whose send never started; kept for the notice if that fails."""

        async def release(session: AsyncSession) -> bool:
            return await QueueRepository(session).release_unsent(queue_id)

        async def landed(session: AsyncSession) -> bool:
            """Never repeated: after a lost reply the row may be another sweep's claim by now
            (counted 1 again), and a repeat would free it to be sent twice. Not landed,
            its lease runs out and the sweep gives the unconfirmed notice."""
            row = await QueueRepository(session).get(queue_id)
            return row is not None and row.status == QueueStatus.SENDING and row.send_attempts == 0

        releasing = asyncio.ensure_future(
            in_transaction(
                self.sessions, release, repeat=Reread(landed), operation="delivery.release_unsent"
            )
        )
        try:
            # Shielded: the caller is being cancelled; the release still completes.
            released = await asyncio.shield(releasing)
        except asyncio.CancelledError:
            return
        except DatabaseUnavailableError:
            # Its lease runs out and the next sweep gives the unconfirmed notice instead.
            logger.warning("delivery.release_failed", queue_id=str(queue_id))
            return
        logger.info("delivery.released_unsent", queue_id=str(queue_id), released=released)

    async def _deliver(
        self, item: ClaimedItem, wait: Callable[[float], Awaitable[None]]
    ) -> DeliveryResult:
        delays = iter(self.backoff_seconds)
        attempt = item.attempt
        # Earlier attempts of a row taken from a crashed process count as unanswered.
        unanswered = attempt - 1
        maybe_delivered = unanswered > 0
        followed = False
        while True:
            try:
                message = await self.notifier.send(item)
            except TelegramMigrateToChat as error:
                # The group became a supergroup: nothing arrived. Its rows move to the new
                # id and the item goes there, neither failed nor backed off (once per send).
                if followed or self.follow_migration is None:
                    return await self._failed(
                        item, str(error), maybe_delivered, chat_unreachable=True
                    )
                followed = True
                topic = await self.follow_migration(item.chat_id, error.migrate_to_chat_id)
                item = dataclasses.replace(
                    item, chat_id=error.migrate_to_chat_id, message_thread_id=topic
                )
                continue
            except TelegramEntityTooLarge as error:
                # A 413 (aiogram files it under network errors): refused, never arrived.
                return await self._failed(item, str(error), maybe_delivered, refused_media=True)
            except (TelegramNetworkError, TelegramServerError) as error:
                # A timeout or a 5xx: the request may have reached Telegram, so the
                # photo may be in the chat. A "may have arrived", never a refusal.
                maybe_delivered = True
                unanswered += 1
                delay = next(delays, None)
                if unanswered >= MAX_UNANSWERED_SENDS or delay is None:
                    return await self._unconfirmed(item, f"Telegram did not answer: {error}")
            except TelegramRetryAfter as error:
                # Flood control: Telegram certainly did not send it. Wait and repeat.
                delay = next(delays, None)
                if delay is None:
                    return await self._failed(
                        item, f"Telegram kept failing: {error}", maybe_delivered
                    )
                # Only this chat's delivery waits; the tick goes on for the others.
                delay = max(delay, float(error.retry_after))
            except TelegramAPIError as error:
                return await self._failed(
                    item,
                    str(error),
                    maybe_delivered,
                    chat_unreachable=_chat_refuses(error),
                    refused_media=_refuses_the_media(error),
                )
            except (MediaFileMissingError, OSError) as error:
                # With MEDIA_DIR itself gone (an unmounted share) no file is to blame.
                bad_file = _file_is_bad(error) and self.notifier.media_dir_reachable()
                return await self._failed(item, str(error), maybe_delivered, refused_media=bad_file)
            else:
                await self._record_sent(item, message.message_id, sent_file_id(message))
                return Delivered(message.message_id)
            attempt += 1
            logger.warning(
                "delivery.retry",
                queue_id=str(item.queue_id),
                chat_id=item.chat_id,
                attempt=attempt,
                delay=delay,
                maybe_delivered=maybe_delivered,
            )
            await wait(delay)
            if not await self._count_attempt(item.queue_id, attempt):
                # Pressed, or held by an Auto Post, from a message that did arrive.
                logger.info("delivery.settled_meanwhile", queue_id=str(item.queue_id))
                return GaveUp("someone already acted on it", maybe_delivered=True)

    @contextlib.asynccontextmanager
    async def hold(self, queue_id: uuid.UUID) -> AsyncIterator[None]:
        """Renew the row's claim while inside: its lease never runs out while it waits."""
        renewing = asyncio.create_task(self._keep_claimed(queue_id))
        try:
            yield
        finally:
            renewing.cancel()
            # gather: the renewer's cancellation is its result, ours still propagates.
            await asyncio.gather(renewing, return_exceptions=True)

    async def _keep_claimed(self, queue_id: uuid.UUID) -> None:
        async def renew(session: AsyncSession) -> bool:
            return await QueueRepository(session).renew_claim(queue_id, self.stuck_after)

        while True:
            await asyncio.sleep(self._lease_renewal)
            try:
                await in_idempotent_transaction(
                    self.sessions,
                    renew,
                    operation="delivery.renew_claim",
                    because="it sets the lease's expiry from the server's now",
                )
            except Exception:
                logger.warning("delivery.renew_failed", queue_id=str(queue_id), exc_info=True)

    async def _count_attempt(self, queue_id: uuid.UUID, attempt: int) -> bool:
        """Count the next attempt; False when the row is no longer ours to send."""

        async def count(session: AsyncSession) -> bool:
            return await QueueRepository(session).reclaim(queue_id, attempt, self.stuck_after)

        return await in_idempotent_transaction(
            self.sessions,
            count,
            operation="delivery.count_attempt",
            because="it sets the attempt number (GREATEST), never increments",
        )

    async def _record_sent(self, item: ClaimedItem, message_id: int, file_id: str | None) -> None:
        new_file_id = file_id if file_id and file_id != item.telegram_file_id else None
        await self._sent_ledger.submit(
            _SentMessage(item.queue_id, message_id, item.media_item_id, new_file_id)
        )
        logger.info(
            "delivery.sent",
            queue_id=str(item.queue_id),
            chat_id=item.chat_id,
            message_id=message_id,
            uploaded=item.telegram_file_id is None,
        )

    async def _record_sent_batch(self, batch: Sequence[_SentMessage]) -> None:
        """Record confirmed sends in one transaction: the rows become `sent` with their ids."""

        async def record(session: AsyncSession) -> None:
            await QueueRepository(session).mark_many_sent(
                [(sent.queue_id, sent.message_id) for sent in batch]
            )
            await MediaRepository(session).set_telegram_file_ids(
                [(sent.media_item_id, sent.new_file_id) for sent in batch if sent.new_file_id]
            )

        await self._write_patiently(
            "delivery.record_sent",
            record,
            "it sets the message ids and statuses to the same values",
            queue_ids=[str(sent.queue_id) for sent in batch],
        )

    async def _failed(
        self,
        item: ClaimedItem,
        error: str,
        maybe_delivered: bool,
        *,
        chat_unreachable: bool = False,
        refused_media: bool = False,
    ) -> GaveUp:
        if maybe_delivered:
            # An earlier attempt may be in the chat with its buttons: keep the row.
            return await self._unconfirmed(item, error, chat_unreachable=chat_unreachable)

        async def fail(session: AsyncSession) -> _Released:
            released = await QueueRepository(session).release(item.queue_id)
            if released is None:
                return _Released(freed=False)
            await HistoryRepository(session).record_failed_send(
                media_item_id=item.media_item_id,
                chat_id=item.chat_id,
                queue_created_at=released.created_at,
                scheduled_for=released.scheduled_for,
                error_message=error,
            )
            if not refused_media:
                return _Released(freed=True)
            # Conditional (WHERE set_aside_at IS NULL): whoever sets it aside announces it.
            stamp = await MediaRepository(session).set_aside(item.media_item_id, error)
            return _Released(freed=True, set_aside_at=stamp)

        async def landed(session: AsyncSession) -> _Released | None:
            """Our COMMIT landed if the row is gone; the stamp is ours if it is our failure's."""
            if await QueueRepository(session).get(item.queue_id) is not None:
                return None
            media = await MediaRepository(session).get(item.media_item_id)
            stamp = media.set_aside_at if media is not None else None
            if stamp is None or not await HistoryRepository(session).failed_at(
                item.media_item_id, stamp
            ):
                return _Released(freed=True)
            return _Released(freed=True, set_aside_at=stamp)

        released = await in_transaction(
            self.sessions, fail, repeat=Reread(landed), operation="delivery.give_up"
        )
        logger.error(
            "delivery.failed",
            queue_id=str(item.queue_id),
            chat_id=item.chat_id,
            error=error,
            set_aside=refused_media,
        )
        if released.set_aside_at is not None:
            await self._announce_set_aside(item, error)
        set_aside = refused_media and released.freed
        return GaveUp(error, chat_unreachable=chat_unreachable, set_aside=set_aside)

    async def _announce_set_aside(self, item: ClaimedItem, reason: str) -> None:
        """Tell the team once: this send set the item aside, and the notice is never repeated."""
        try:
            with at_most_once():
                await self.notifier.send_set_aside_notice(item, reason)
        except TelegramAPIError as error:
            # /status and /queue still list the item, with its Put back button.
            logger.warning(
                "delivery.set_aside_notice_failed",
                media_item_id=str(item.media_item_id),
                error=str(error),
            )

    async def _write_patiently(
        self,
        operation: str,
        work: Callable[[AsyncSession], Awaitable[None]],
        because: str,
        **log_values: object,
    ) -> None:
        """An idempotent write that outlasts an outage, for up to `record_patience`.

        For what must not be lost (a confirmed send's message id): the normal
        retry deadline is a few seconds, an outage or an exhausted pool may be
        longer. Cancelled (shutdown), the row stays `sending` and its lease runs
        out: the next sweep gives it the unconfirmed notice, never a resend.
        """
        waits = iter(self.record_backoff_seconds)
        give_up_at = time.monotonic() + self.record_patience.total_seconds()
        while True:
            try:
                await in_idempotent_transaction(
                    self.sessions, work, operation=operation, because=because
                )
            except DatabaseUnavailableError:
                delay = next(waits, self.record_backoff_seconds[-1])
                if time.monotonic() + delay > give_up_at:
                    logger.error(f"{operation}_abandoned", **log_values)
                    raise
                logger.warning(f"{operation}_waiting", delay=delay, **log_values)
                try:
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    logger.error(f"{operation}_cancelled", **log_values)
                    raise
            else:
                return

    async def _unconfirmed(
        self, item: ClaimedItem, error: str, *, chat_unreachable: bool = False
    ) -> GaveUp:
        """Nobody knows if it arrived: the team gets its buttons, the row stays actionable.

        The notice goes out at most once per row: it is marked on the row before it
        is sent, and never repeated once it may have reached Telegram. The row
        becomes `sent` (no message id) once the notice is in the chat or may be.
        If Telegram certainly never took it, the mark is removed and the row stays
        `sending`: the stuck-row sweep tries again later, so the team is never left
        without buttons for it.
        """
        outcome = GaveUp(
            f"Telegram didn't confirm the send; it may have arrived ({error})",
            maybe_delivered=True,
            chat_unreachable=chat_unreachable,
        )
        logger.warning(
            "delivery.unconfirmed", queue_id=str(item.queue_id), chat_id=item.chat_id, error=error
        )
        # A chat that refuses the bot can take no notice and press no button.
        if not chat_unreachable and not await self._notice(item):
            return outcome

        async def keep(session: AsyncSession) -> bool:
            return await QueueRepository(session).mark_unconfirmed(item.queue_id)

        await in_idempotent_transaction(
            self.sessions,
            keep,
            operation="delivery.unconfirmed",
            because="it sets the status of a `sending` row to `sent`",
        )
        return outcome

    async def _notice(self, item: ClaimedItem) -> bool:
        """Send the notice unless it went out before; False when it certainly did not arrive."""
        marked_at = await self._mark_notice(item.queue_id)
        if marked_at is None:
            logger.info("delivery.notice_already_sent", queue_id=str(item.queue_id))
            return True
        try:
            await self._send_notice(item)
        except TelegramAPIError as error:
            if _may_have_arrived(error):
                logger.warning(
                    "delivery.notice_unconfirmed", queue_id=str(item.queue_id), error=str(error)
                )
                return True
            if _chat_refuses(error):
                # Nobody there can read a notice or press a button: settle the row as it is.
                logger.warning("delivery.notice_chat_gone", queue_id=str(item.queue_id))
                return True
            logger.warning("delivery.notice_failed", queue_id=str(item.queue_id), error=str(error))
            await self._unmark_notice(item.queue_id, marked_at)
            return False
        return True

    async def _send_notice(self, item: ClaimedItem) -> None:
        """The notice; in the supergroup when Telegram upgraded the group meanwhile."""
        try:
            with at_most_once():
                await self.notifier.send_unconfirmed_notice(item)
        except TelegramMigrateToChat as error:
            # Nothing arrived: the rows move (once, whoever asks) and the notice goes there.
            if self.follow_migration is None:
                raise
            topic = await self.follow_migration(item.chat_id, error.migrate_to_chat_id)
            moved = dataclasses.replace(
                item, chat_id=error.migrate_to_chat_id, message_thread_id=topic
            )
            with at_most_once():
                await self.notifier.send_unconfirmed_notice(moved)

    async def _mark_notice(self, queue_id: uuid.UUID) -> datetime | None:
        stamped: list[datetime] = []

        async def mark(session: AsyncSession) -> datetime | None:
            stamped[:] = [(await session.execute(select(func.now()))).scalar_one()]
            return await QueueRepository(session).mark_notice(queue_id)

        async def landed(session: AsyncSession) -> datetime | None:
            """Our mark carries our transaction's time; another's (or none) is not ours."""
            row = await QueueRepository(session).get(queue_id)
            if row is None or not stamped or row.unconfirmed_notice_at != stamped[0]:
                return None
            return row.unconfirmed_notice_at

        return await in_transaction(
            self.sessions, mark, repeat=Reread(landed), operation="delivery.mark_notice"
        )

    async def _unmark_notice(self, queue_id: uuid.UUID, marked_at: datetime) -> None:
        async def unmark(session: AsyncSession) -> bool:
            return await QueueRepository(session).unmark_notice(queue_id, marked_at)

        try:
            await in_idempotent_transaction(
                self.sessions,
                unmark,
                operation="delivery.unmark_notice",
                because="it clears our own mark",
            )
        except DatabaseUnavailableError:
            # Left marked, the sweep settles the row without a notice: the media's own
            # buttons (if it arrived) still work; logged so someone can look.
            logger.error("delivery.notice_unmark_failed", queue_id=str(queue_id))

    async def take_stuck(self) -> list[ClaimedItem]:
        """Rows whose sender's lease ran out: each is settled with the unconfirmed notice.

        Its sender died after counting an attempt, i.e. after the send may have
        left, or even after Telegram confirmed it and before the message id was
        written: the sweep cannot tell, so it never sends the item again. The team
        gets the notice with its buttons (unless one went out already) and the row
        becomes `sent`. Every row taken has its lease renewed in the same transaction.
        """
        planned: list[ClaimedItem] = []
        # The transaction time our claims carry (now() is fixed per transaction):
        # another process's sweep of the same rows stamps its own.
        stamped: list[datetime] = []

        async def take(session: AsyncSession) -> list[ClaimedItem]:
            planned.clear()
            queue = QueueRepository(session)
            media_repository = MediaRepository(session)
            rows = await queue.stuck_sending()
            if rows:
                stamped[:] = [(await session.execute(select(func.now()))).scalar_one()]
            for row in rows:
                media = await media_repository.get(row.media_item_id)
                assert media is not None  # the foreign key cascades
                chat = await ChatSettingsRepository(session).get(row.chat_id)
                topic = None if chat is None else chat.message_thread_id
                # Read before the UPDATE below, which expires the loaded row.
                row_id, unsent = row.id, row.send_attempts == 0
                attempts = max(row.send_attempts, 1)
                await queue.reclaim(row_id, attempts, self.stuck_after)
                planned.append(
                    ClaimedItem.of(
                        row_id, media, attempts, message_thread_id=topic, never_sent=unsent
                    )
                )
            return list(planned)

        async def landed(session: AsyncSession) -> list[ClaimedItem] | None:
            """Did our COMMIT land? Then its rows carry our claim time and the count it set."""
            if not planned:
                return None
            rows = {
                row.id: row
                for row in await QueueRepository(session).get_many(
                    [item.queue_id for item in planned]
                )
            }
            for item in planned:
                row = rows.get(item.queue_id)
                if (
                    row is None
                    or row.status != QueueStatus.SENDING
                    or row.send_attempts != item.attempt
                    or row.claimed_at != stamped[0]
                ):
                    return None
            return list(planned)

        return await in_transaction(
            self.sessions, take, repeat=Reread(landed), operation="delivery.stuck"
        )

    async def settle_unconfirmed(self, item: ClaimedItem) -> GaveUp:
        """A row its sender left in `sending`: the notice with its buttons, then `sent`."""
        async with self.hold(item.queue_id):
            return await self._unconfirmed(item, "its sender stopped before the send was recorded")
