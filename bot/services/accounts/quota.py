"""The daily publishing limit: read (briefly cached) per chat, and checked before a container."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.instagram import (
    InstagramClient,
    InstagramError,
    InstagramFailure,
    PublishingQuota,
)
from db.repositories.activity import ActivityRepository
from db.retry import Idempotent, in_transaction

logger = structlog.get_logger(__name__)

QUOTA_CACHE_SECONDS = 60.0


class QuotaReachedError(InstagramError):
    """At the daily publishing limit: nothing is created."""

    def __init__(self, quota: PublishingQuota, frees_in: timedelta | None) -> None:
        super().__init__(InstagramFailure.QUOTA_REACHED, f"{quota.used}/{quota.total}")
        self.quota = quota
        self.frees_in = frees_in

    @property
    def cause(self) -> str:
        return (
            f"the daily Instagram limit is reached ({self.quota.used}/{self.quota.total} "
            f"posts in 24 h); it frees up {roughly(self.frees_in)} — post by hand meanwhile"
        )


def roughly(delta: timedelta | None) -> str:
    if delta is None:
        return "within 24 hours"
    minutes = max(1, round(delta.total_seconds() / 60))
    if minutes < 90:
        return f"in about {minutes} min"
    return f"in about {round(minutes / 60)} h"


class PublishingQuotas:
    """Each chat's quota as last read, kept for a minute so /status does not ask every time."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._monotonic = monotonic
        self._read: dict[int, tuple[float, PublishingQuota]] = {}

    def forget(self, chat_id: int) -> None:
        self._read.pop(chat_id, None)

    async def read(
        self, chat_id: int, client: InstagramClient, *, max_age: float = QUOTA_CACHE_SECONDS
    ) -> PublishingQuota:
        cached = self._read.get(chat_id)
        now = self._monotonic()
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        quota = await client.publishing_limit()
        self._read[chat_id] = (now, quota)
        return quota

    async def check(self, chat_id: int, client: InstagramClient) -> None:
        """Before a container is created: raise QuotaReachedError at the limit.

        A quota that cannot be read does not block the post; Instagram still
        refuses one over the limit, and that failure is reported.
        """
        try:
            quota = await self.read(chat_id, client, max_age=0)
        except InstagramError as error:
            logger.warning("instagram.quota_unknown", chat_id=chat_id, failure=error.failure.value)
            return
        if not quota.reached:
            return
        now = self._clock()
        window = timedelta(seconds=quota.window_seconds)

        async def oldest(session: AsyncSession) -> datetime | None:
            return await ActivityRepository(session).oldest_api_post_since(chat_id, now - window)

        try:
            first = await in_transaction(
                self._sessions, oldest, repeat=Idempotent("it only reads"), operation="quota.frees"
            )
        except Exception:
            logger.warning("instagram.quota_frees_unknown", chat_id=chat_id, exc_info=True)
            first = None
        logger.info("instagram.quota_reached", chat_id=chat_id, used=quota.used, total=quota.total)
        raise QuotaReachedError(quota, None if first is None else first + window - now)
