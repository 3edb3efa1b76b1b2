"""🤖 Auto Post: claim the item, publish the Story, record it like a press (design §6)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import quote

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.clock import Clock, utc_now
from bot.services.instagram import InstagramError, InstagramFailure
from bot.services.instagram_accounts import InstagramAccounts
from bot.services.press import Press, PressOutcome, PressService, explain
from db.errors import DatabaseUnavailableError
from db.repositories import (
    ChatSettingsRepository,
    MediaRepository,
    PressRepository,
    QueueRepository,
    TelegramIdentity,
)
from db.repositories.press import AUTOPOST_STALE_SECONDS
from db.retry import Idempotent, run_with_retry

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AutoPostClaim:
    queue_id: uuid.UUID
    chat_id: int
    media_url: str
    video: bool
    dry_run: bool
    published_media_id: str | None  # published by an earlier attempt, not yet recorded


class AutoPostResult(StrEnum):
    RECORDED = "recorded"
    DRY_RUN = "dry_run"
    FAILED = "failed"
    UNRECORDED = "unrecorded"  # published, but the database write failed


@dataclass(frozen=True, slots=True)
class AutoPostOutcome:
    result: AutoPostResult
    press: PressOutcome | None = None
    error: InstagramError | None = None
    media_id: str | None = None


class AutoPostService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        press_service: PressService,
        accounts: InstagramAccounts,
        media_public_base_url: str,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._press = press_service
        self._accounts = accounts
        self._base_url = media_public_base_url.rstrip("/")
        self._clock = clock

    async def claim(self, queue_id: uuid.UUID, chat_id: int) -> AutoPostClaim | PressOutcome:
        """Hold the item so a concurrent ✅ or ⏭️ cannot also win; or say why not."""
        stale_before: datetime = self._clock() - timedelta(seconds=AUTOPOST_STALE_SECONDS)

        async def take(session: AsyncSession) -> AutoPostClaim | PressOutcome:
            async with session.begin():
                row = await QueueRepository(session).claim_for_autopost(
                    queue_id, chat_id, stale_before
                )
                if row is None:
                    state = await PressRepository(session).state(queue_id)
                    probe = Press(
                        queue_id=queue_id,
                        chat_id=chat_id,
                        status="posted",
                        presser=TelegramIdentity(0),
                        posting_method="instagram_api",
                    )
                    outcome = explain(state, probe, after_lost_connection=False)
                    assert outcome is not None
                    return outcome
                media = await MediaRepository(session).get(row.media_item_id)
                chat = await ChatSettingsRepository(session).get(chat_id)
                assert media is not None
                assert chat is not None
                return AutoPostClaim(
                    queue_id=queue_id,
                    chat_id=chat_id,
                    media_url=f"{self._base_url}/{quote(media.file_path)}",
                    video=media.media_kind == "video",
                    dry_run=chat.dry_run,
                    published_media_id=row.instagram_media_id,
                )

        return await run_with_retry(
            self._sessions,
            take,
            repeat=Idempotent("TODO(#11): a repeat after a landed claim answers 'in progress'"),
            operation="autopost.claim",
        )

    async def publish(
        self,
        claim: AutoPostClaim,
        presser: TelegramIdentity,
        telegram_message_id: int | None = None,
    ) -> AutoPostOutcome:
        media_id = claim.published_media_id
        if media_id is None:
            try:
                # igcare: the chat's own account, and the daily quota before any container.
                instagram = self._accounts.client_for(claim.chat_id)
                if instagram is None:
                    raise InstagramError(InstagramFailure.API, "no account for this chat")
                await self._accounts.check_quota(claim.chat_id)
                container = await instagram.create_story_container(
                    claim.media_url, video=claim.video
                )
                await self._remember(claim.queue_id, creation_id=container)
                await instagram.wait_until_ready(container)
                if claim.dry_run:
                    await self._release(claim.queue_id)
                    logger.info("autopost.dry_run", queue_id=str(claim.queue_id))
                    return AutoPostOutcome(result=AutoPostResult.DRY_RUN)
                media_id = await instagram.publish(container)
            except InstagramError as error:
                logger.warning(
                    "autopost.failed",
                    queue_id=str(claim.queue_id),
                    failure=error.failure.value,
                    detail=error.detail,
                )
                await self._release(claim.queue_id)
                return AutoPostOutcome(result=AutoPostResult.FAILED, error=error)
            logger.info("autopost.published", queue_id=str(claim.queue_id), media_id=media_id)
            # Kept on the row first: whatever fails next, no retry publishes again.
            await self._remember(claim.queue_id, media_id=media_id)
        press = Press(
            queue_id=claim.queue_id,
            chat_id=claim.chat_id,
            status="posted",
            presser=presser,
            telegram_message_id=telegram_message_id,
            posting_method="instagram_api",
            instagram_media_id=media_id,
            completes_autopost=True,
        )
        try:
            outcome = await self._press.record(press)
        except DatabaseUnavailableError:
            logger.error("autopost.unrecorded", queue_id=str(claim.queue_id), media_id=media_id)
            return AutoPostOutcome(result=AutoPostResult.UNRECORDED, media_id=media_id)
        return AutoPostOutcome(result=AutoPostResult.RECORDED, press=outcome, media_id=media_id)

    async def _remember(
        self, queue_id: uuid.UUID, *, creation_id: str | None = None, media_id: str | None = None
    ) -> None:
        async def store(session: AsyncSession) -> None:
            async with session.begin():
                await QueueRepository(session).set_instagram_ids(
                    queue_id, creation_id=creation_id, media_id=media_id
                )

        try:
            await run_with_retry(
                self._sessions,
                store,
                repeat=Idempotent("it sets the ids to the same values"),
                operation="autopost.remember",
            )
        except DatabaseUnavailableError:
            logger.error("autopost.remember_failed", queue_id=str(queue_id), media_id=media_id)

    async def _release(self, queue_id: uuid.UUID) -> None:
        async def release(session: AsyncSession) -> None:
            async with session.begin():
                await QueueRepository(session).release_autopost(queue_id)

        try:
            await run_with_retry(
                self._sessions,
                release,
                repeat=Idempotent("it only changes a row still on `publishing`"),
                operation="autopost.release",
            )
        except DatabaseUnavailableError:
            # The hold expires by itself (AUTOPOST_STALE_SECONDS).
            logger.error("autopost.release_failed", queue_id=str(queue_id))
