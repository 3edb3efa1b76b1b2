"""Runway: how long the eligible library lasts at the chat's posts per day, and a warning in time.

Items locked for a while (a recent post, a skip) count from the day their lock
runs out; each item posted comes back after the chat's repost lock. Each
category is drawn at its share of the library (the selection order cycles
through the whole library). When a chat's runway drops below its threshold
(`/settings runway N`), the chat is told once; it is told again only after the
runway recovered and dropped again. The warning is recorded (a conditional
UPDATE) before it is sent, so a lost answer or a second process never sends it
twice.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import datetime

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramMigrateToChat
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.chats import ChatDirectory
from bot.services.notices import TeamNotices
from bot.services.periodic import every, wait_for_stop
from bot.telegram_retry import at_most_once, delivered_nothing
from db.models import ChatSettings
from db.repositories import ChatMigrationRepository, ChatSettingsRepository
from db.repositories.stats import StatsRepository
from db.retry import Reread, in_idempotent_transaction, in_transaction

logger = structlog.get_logger(__name__)

HORIZON_DAYS = 365  # beyond this the runway is "over a year"


@dataclass(frozen=True, slots=True)
class CategoryRunway:
    category: str | None
    days: float | None  # None: lasts beyond the horizon


@dataclass(frozen=True, slots=True)
class Runway:
    posts_per_day: int
    days: float | None  # None: lasts beyond the horizon
    shortest: CategoryRunway | None  # the category that runs out first, if before the rest

    def below(self, threshold_days: int) -> bool:
        return self.days is not None and self.days < threshold_days


def days_lasting(releases: dict[int, float], rate: float, repost_days: int) -> float | None:
    """Days until fewer than a day's posts are free, drawing `rate` a day; None past the horizon.

    `releases[d]` items become free on day d (0: now); each one posted comes back
    `repost_days` later.
    """
    if rate <= 0:
        return None
    returns: dict[int, float] = defaultdict(float, releases)
    pool = 0.0
    for day in range(HORIZON_DAYS):
        pool += returns.pop(day, 0.0)
        if pool < rate - 1e-9:  # float sums must not lose a whole day
            return round(day + max(0.0, pool) / rate, 6)
        pool -= rate
        returns[day + max(1, repost_days)] += rate
    return None


def runway_of(
    releases: Sequence[tuple[str | None, int, int]], posts_per_day: int, repost_days: int
) -> Runway:
    """The chat's runway and the category that runs out first, from `StatsRepository.releases`."""
    overall: dict[int, float] = defaultdict(float)
    by_category: dict[str | None, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for category, day, items in releases:
        overall[day] += items
        by_category[category][day] += items
    total = sum(overall.values())
    days = days_lasting(overall, posts_per_day, repost_days)
    shortest = None
    if len(by_category) > 1 and total:
        for category, category_releases in by_category.items():
            share = sum(category_releases.values()) / total
            lasts = days_lasting(category_releases, posts_per_day * share, repost_days)
            if lasts is None or (days is not None and lasts >= days):
                continue
            if shortest is None or shortest.days is None or lasts < shortest.days:
                shortest = CategoryRunway(category, lasts)
    return Runway(posts_per_day=posts_per_day, days=days, shortest=shortest)


async def read_runway(session: AsyncSession, chat: ChatSettings, now: datetime) -> Runway:
    releases = await StatsRepository(session).releases(chat.telegram_chat_id, now)
    return runway_of(releases, chat.posts_per_day, chat.repost_ttl_days)


@dataclass(frozen=True)
class RunwayWatch:
    """Tells each chat once when its runway drops below its threshold."""

    sessions: async_sessionmaker[AsyncSession]
    bot: Bot
    _: KW_ONLY
    clock: Callable[[], datetime]
    # The served chats, followed to where Telegram moved them (by any process).
    chat_directory: ChatDirectory
    # Renders the warning (bot.presentation).
    notices: TeamNotices
    interval_seconds: float = 3600.0
    # Moves a group Telegram upgraded to its supergroup; returns the queue topic there.
    follow_migration: Callable[[int, int], Awaitable[int | None]] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """First check one interval after start (startup has enough to do), then every interval."""
        await wait_for_stop(stop, self.interval_seconds)
        if stop.is_set():
            return
        await every(self.interval_seconds, stop, self.tick, log=logger, failed="runway.failed")

    async def tick(self) -> None:
        await self.chat_directory.refresh()
        for chat_id in self.chat_directory.served():
            try:
                await self.check(chat_id)
            except Exception:
                logger.exception("runway.chat_failed", chat_id=chat_id)

    async def check(self, configured_chat_id: int) -> bool:
        """Warn if due; True when this call sent the warning."""
        now = self.clock()

        async def read(session: AsyncSession) -> tuple[ChatSettings, Runway] | None:
            chats = ChatSettingsRepository(session)
            chat = await chats.get(configured_chat_id)
            if chat is None:
                # Telegram upgraded the group (maybe seen by another process): its
                # rows live under the supergroup's id now.
                moved_to = (await ChatMigrationRepository(session).moved()).get(configured_chat_id)
                chat = None if moved_to is None else await chats.get(moved_to)
            if chat is None or chat.is_paused:
                return None
            return chat, await read_runway(session, chat, now)

        found = await in_idempotent_transaction(
            self.sessions, read, operation="runway.read", because="it only reads"
        )
        if found is None:
            return False
        chat, runway = found
        chat_id = chat.telegram_chat_id
        threshold = chat.runway_warning_days
        if not threshold or not runway.below(threshold):
            if chat.runway_warned_at is not None:
                await self._clear_warned(chat_id, chat.runway_warned_at)
                logger.info("runway.recovered", chat_id=chat_id, days=runway.days)
            return False
        if chat.runway_warned_at is not None:
            return False

        transaction: int | None = None

        async def mark(session: AsyncSession) -> bool:
            nonlocal transaction
            transaction = await ChatSettingsRepository(session).mark_runway_warned(chat_id, now)
            return transaction is not None

        async def ours(session: AsyncSession) -> bool | None:
            # After a lost connection: did our mark land? Then we still send. Another
            # process's mark, even one stamped at the same instant, is not ours.
            if transaction is None:
                return None
            return True if await ChatSettingsRepository(session).committed(transaction) else None

        marked = await in_transaction(
            self.sessions, mark, repeat=Reread(ours), operation="runway.mark_warned"
        )
        if not marked:
            return False  # another process warned first
        text = self.notices.runway_warning(runway, threshold)
        try:
            with at_most_once():
                try:
                    await self.bot.send_message(
                        chat_id, text, message_thread_id=chat.message_thread_id
                    )
                except TelegramMigrateToChat as moved:
                    # Nothing arrived: the warning (its mark moves with the chat's row)
                    # goes to the supergroup instead of being lost.
                    if self.follow_migration is None:
                        raise
                    topic = await self.follow_migration(chat_id, moved.migrate_to_chat_id)
                    chat_id = moved.migrate_to_chat_id
                    await self.bot.send_message(chat_id, text, message_thread_id=topic)
        except TelegramAPIError as error:
            if not delivered_nothing(error):
                # It may have arrived; a second warning is worse than none.
                logger.warning("runway.warning_unknown", chat_id=chat_id, error=str(error))
                return False
            logger.warning("runway.warning_refused", chat_id=chat_id, error=error.message)
            await self._clear_warned(chat_id, now)
            return False
        logger.info("runway.warned", chat_id=chat_id, days=runway.days, threshold=threshold)
        return True

    async def _clear_warned(self, chat_id: int, marked_at: datetime) -> None:
        async def work(session: AsyncSession) -> None:
            await ChatSettingsRepository(session).clear_runway_warned(chat_id, marked_at)

        await in_idempotent_transaction(
            self.sessions,
            work,
            operation="runway.clear_warned",
            because="it clears one mark, if still there",
        )
