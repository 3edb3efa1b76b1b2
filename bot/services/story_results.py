"""Story results, kept: a care loop reads each live Story's insights before Instagram drops them.

Instagram keeps a Story's insights for its 24 hours only. Each round lists the
account's live Stories (`/{ig-user-id}/stories`, hand-posted ones included),
notes new ones, and reads the insights of each that is due: hourly, and once
more in its last hour. The last values are SET on the Story's row, so reading is
idempotent and a lost answer is simply asked again next round.

A Story published by Auto Post is tied to its history row by media id. A
hand-posted one is tied to a ✅ Posted press only when it is the one Story that
went live in a short window around the press (docs/architecture.md §12).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.accounts.clients import InstagramAccounts
from bot.services.instagram import (
    INSIGHTS_PERMISSIONS,
    InstagramClient,
    InstagramError,
    InstagramFailure,
    LiveStory,
    StoryInsights,
)
from bot.services.periodic import every
from db.repositories.story_results import StoryResultsRepository
from db.retry import in_idempotent_transaction

logger = structlog.get_logger(__name__)

# The window around a ✅ Posted press in which its hand-posted Story must be the only one.
MANUAL_TIE_BEFORE = timedelta(minutes=10)
MANUAL_TIE_AFTER = timedelta(minutes=15)
# These end the account's round: reading on would only be refused again.
STOP_ROUND = frozenset(
    {InstagramFailure.RATE_LIMIT, InstagramFailure.TOKEN_EXPIRED, InstagramFailure.UNREACHABLE}
)


@dataclass
class StoryResultsCare:
    """Reads and keeps each chat's live Stories' insights; off for an account without the right."""

    sessions: async_sessionmaker[AsyncSession]
    accounts: InstagramAccounts
    _: KW_ONLY
    clock: Callable[[], datetime]
    interval_seconds: float = 600.0
    # Accounts whose token lacks the insights permission: said once, then left alone.
    switched_off: set[int] = field(default_factory=set)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set; a failing tick is logged and the loop goes on."""
        await every(
            self.interval_seconds, stop, self.tick, log=logger, failed="story_results.care_failed"
        )

    async def tick(self) -> None:
        for chat_id in self.accounts.chat_ids:
            if chat_id in self.switched_off:
                continue
            client = self.accounts.client_for(chat_id)
            if client is None:
                continue
            try:
                await self.read_account(chat_id, client)
            except Exception:
                # One chat's trouble never keeps the others' results from being kept.
                logger.exception("story_results.chat_failed", chat_id=chat_id)

    async def read_account(self, chat_id: int, client: InstagramClient) -> int:
        """One round for one account; how many Stories' insights were read."""
        health = self.accounts.health(chat_id)
        now = self.clock()
        if health is not None and health.expired(now):
            # The token care warns the chat; asking with a dead token only collects 190s.
            logger.info("story_results.token_expired", chat_id=chat_id)
            return 0
        try:
            stories = await client.live_stories()
        except InstagramError as error:
            self._failed(chat_id, error, "stories")
            return 0
        due = await self._note(chat_id, stories, now)
        read = 0
        for media_id in due:
            try:
                insights = await client.story_insights(media_id)
            except InstagramError as error:
                if self._failed(chat_id, error, media_id):
                    break
                continue
            await self._store(chat_id, media_id, insights, self.clock())
            read += 1
        logger.info("story_results.read", chat_id=chat_id, live=len(stories), read=read)
        return read

    async def _note(self, chat_id: int, stories: list[LiveStory], now: datetime) -> list[str]:
        """Record new Stories, tie them to history, and say which are due for a read."""

        async def work(session: AsyncSession) -> list[str]:
            repository = StoryResultsRepository(session)
            await repository.seen(
                chat_id, [(story.media_id, story.posted_at) for story in stories], now
            )
            await repository.tie_autoposts(chat_id)
            await repository.tie_manual_presses(
                chat_id, now, before=MANUAL_TIE_BEFORE, after=MANUAL_TIE_AFTER
            )
            return await repository.due(chat_id, [story.media_id for story in stories], now)

        return await in_idempotent_transaction(
            self.sessions,
            work,
            operation="story_results.note",
            because="its inserts conflict on the Story's key and its ties only fill empty ones",
        )

    async def _store(
        self, chat_id: int, media_id: str, insights: StoryInsights, now: datetime
    ) -> None:
        async def work(session: AsyncSession) -> None:
            await StoryResultsRepository(session).store(
                chat_id, media_id, insights.values, insights.note, now
            )

        await in_idempotent_transaction(
            self.sessions, work, operation="story_results.store", because="it sets values"
        )

    def _failed(self, chat_id: int, error: InstagramError, what: str) -> bool:
        """Log a failed read; True when the rest of this account's round is skipped."""
        if error.failure is InstagramFailure.NO_PERMISSION:
            self.switched_off.add(chat_id)
            logger.warning(
                "story_results.no_permission",
                chat_id=chat_id,
                needs=INSIGHTS_PERMISSIONS,
                hint="Story results stay off for this account until the bot restarts"
                " with a token that has the permission",
            )
            return True
        logger.warning(
            "story_results.read_failed",
            chat_id=chat_id,
            what=what,
            failure=error.failure.value,
            detail=error.detail,
        )
        return error.failure in STOP_ROUND
