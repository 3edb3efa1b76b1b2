"""The resolver: settle `publishing` rows nobody holds, and captions left unsettled.

It runs as a sweep, after a re-press of 🤖, and for the holder itself after an
unknown outcome. Once a publish request may have left, only the container's
status decides: PUBLISHED -> record it; FINISHED -> publish that same container
(it publishes at most once); ERROR / EXPIRED -> give the item back.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.autopost.board import AutoPostStep, GiveBackReason, ItemMessage
from bot.services.autopost.holds import Hold, HoldProgress
from bot.services.autopost.lookups import AfterRefusal, chat_client, find_story, recheck_refused
from bot.services.autopost.parts import AutoPostParts
from bot.services.autopost.phases import AutoPostPhase
from bot.services.autopost.results import AutoPostOutcome, AutoPostResult
from bot.services.instagram import (
    CONTAINER_FAILED,
    ContainerStatus,
    InstagramError,
    InstagramFailure,
)
from bot.services.periodic import every
from bot.services.press import OutcomeKind, PressOutcome
from db.errors import DatabaseUnavailableError
from db.repositories import HistoryRepository, MediaRepository, QueueRepository
from db.retry import Idempotent, in_transaction
from db.vocabulary import HistoryStatus, PostingMethod

logger = structlog.get_logger(__name__)


class Resolver:
    def __init__(
        self, parts: AutoPostParts, *, sweep_interval_seconds: float, recheck_after_seconds: float
    ) -> None:
        self._parts = parts
        self._sweep_interval = sweep_interval_seconds
        self._recheck_after = recheck_after_seconds

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep at once (rows a restart left) and then every interval until `stop`."""
        await every(
            self._sweep_interval, stop, self.sweep, log=logger, failed="autopost.sweep_failed"
        )

    async def sweep(self) -> int:
        """Resolve every `publishing` row nobody holds, then unsettled captions; rows looked at."""

        async def read(session: AsyncSession) -> list[uuid.UUID]:
            return await QueueRepository(session).autoposts_to_resolve()

        queue_ids = await in_transaction(
            self._parts.sessions,
            read,
            repeat=Idempotent("it only reads"),
            operation="autopost.sweep",
        )
        for queue_id in queue_ids:
            try:
                await self.resolve(queue_id)
            except Exception:
                # One row failing (handed over by resolve) never keeps the others waiting.
                logger.exception("autopost.resolve_failed", queue_id=str(queue_id))
        await self.settle_captions()
        return len(queue_ids)

    async def resolve_soon(self, queue_id: uuid.UUID, *, immediately: bool = False) -> None:
        """Resolve after a short wait (Instagram may still be finishing the request)."""
        if not immediately:
            await asyncio.sleep(self._recheck_after)
        try:
            await self.resolve(queue_id)
        except DatabaseUnavailableError:
            logger.warning("autopost.resolve_deferred", queue_id=str(queue_id))
        except Exception:
            # A spawned task: unlogged here, its error would surface nowhere. The sweep retries.
            logger.exception("autopost.resolve_failed", queue_id=str(queue_id))

    async def resolve(self, queue_id: uuid.UUID) -> AutoPostOutcome | None:
        """Settle one `publishing` row nobody holds; None when someone else holds it."""
        hold = await self._parts.holds.take(queue_id)
        if hold is None:
            return None
        outcome = await self._resolve_held(hold)
        if outcome.result is not AutoPostResult.CHECKING and hold.media is not None:
            # Settled: the hosted copy (put there by whoever pressed) is needed no more.
            await self._parts.media_host.release_item(hold.media)
        return outcome

    async def _resolve_held(self, hold: Hold) -> AutoPostOutcome:
        queue_id = hold.queue_id
        try:
            if hold.phase is AutoPostPhase.PUBLISHED:
                return await self._parts.recorder.record(
                    HoldProgress(hold), hold.instagram_media_id
                )
            if hold.phase is not AutoPostPhase.PUBLISH_REQUESTED or not hold.instagram_creation_id:
                # No publish request ever left: nothing can have been published.
                if await self._parts.holds.give_back(hold):
                    await self._parts.board.restore_buttons(
                        hold.message, GiveBackReason.INTERRUPTED
                    )
                logger.info("autopost.given_back", queue_id=str(queue_id))
                return AutoPostOutcome(result=AutoPostResult.FAILED)
            return await self.settle_container(hold)
        except BaseException:
            # Cancelled, the database gone, or a surprise: the next sweep tries again.
            await self._parts.holds.hand_over(hold)
            raise

    async def settle_container(self, hold: Hold) -> AutoPostOutcome:
        """A publish request may have left: the container's status says what happened."""
        queue_id = hold.queue_id
        container = hold.instagram_creation_id
        assert container is not None
        if self._parts.accounts.client_for(hold.chat_id) is None:
            return await self._unresolvable(hold)
        try:
            instagram = chat_client(self._parts.accounts, hold.chat_id)
            state = await instagram.container_status(container)
        except InstagramError as error:
            logger.warning(
                "autopost.still_unknown", queue_id=str(queue_id), reference=error.reference
            )
            if not error.outcome_unknown and error.failure is not InstagramFailure.UNREACHABLE:
                # Instagram answered but won't tell (e.g. error 190): say what blocks it.
                await self._parts.board.show_progress(
                    hold.message, AutoPostStep.CHECKING, answer=error
                )
            await self._parts.holds.hand_over(hold)
            return AutoPostOutcome(result=AutoPostResult.CHECKING, error=error)
        logger.info("autopost.container_status", queue_id=str(queue_id), status=state.code)
        if state.status is ContainerStatus.PUBLISHED:
            story = await find_story(instagram, hold.instagram_publish_requested_at)
            return await self._parts.recorder.record(HoldProgress(hold), story)
        if state.status in CONTAINER_FAILED:
            return await self._fail(hold, state.error())
        if state.status is not ContainerStatus.FINISHED:
            # IN_PROGRESS (or something new): ask again on the next sweep.
            await self._parts.holds.hand_over(hold)
            return AutoPostOutcome(result=AutoPostResult.CHECKING)
        # Never published: publish this same container (it publishes at most once).
        hold = await self._parts.holds.advance_quietly(hold)
        try:
            media_id = await instagram.publish(container)
        except InstagramError as error:
            if not error.outcome_unknown:
                # Refused; but the first request may have landed meanwhile: look again.
                after = await recheck_refused(
                    instagram, container, error, earlier_request=True, queue_id=queue_id
                )
                if after is AfterRefusal.PUBLISHED:
                    story = await find_story(instagram, hold.instagram_publish_requested_at)
                    return await self._parts.recorder.record(HoldProgress(hold), story)
                if after is AfterRefusal.UNPUBLISHED:
                    return await self._fail(hold, error)
            await self._parts.holds.hand_over(hold)
            return AutoPostOutcome(result=AutoPostResult.CHECKING, error=error)
        logger.info("autopost.published_on_resolve", queue_id=str(queue_id), media_id=media_id)
        return await self._parts.recorder.record(HoldProgress(hold), media_id)

    async def _fail(self, hold: Hold, error: InstagramError) -> AutoPostOutcome:
        """Nothing was published: the item gets its buttons back and the caption says why."""
        logger.warning(
            "autopost.failed",
            queue_id=str(hold.queue_id),
            failure=error.failure.value,
            reference=error.reference,
        )
        if not await self._parts.holds.give_back(hold):
            return AutoPostOutcome(result=AutoPostResult.CHECKING, error=error)
        await self._parts.board.restore_buttons(hold.message, GiveBackReason.FAILED, error=error)
        return AutoPostOutcome(result=AutoPostResult.FAILED, error=error)

    async def _unresolvable(self, hold: Hold) -> AutoPostOutcome:
        """The chat's account was removed while the outcome was unknown: nobody can ask.

        The buttons come back (✅ and ⏭️ work again) and the caption says to look
        on Instagram first: the earlier publish may have gone live.
        """
        logger.warning("autopost.unresolvable", queue_id=str(hold.queue_id), chat_id=hold.chat_id)
        if not await self._parts.holds.give_back(hold):
            return AutoPostOutcome(result=AutoPostResult.CHECKING)
        await self._parts.board.restore_buttons(hold.message, GiveBackReason.UNRESOLVABLE)
        return AutoPostOutcome(result=AutoPostResult.FAILED)

    async def settle_captions(self) -> int:
        """Repair recorded Auto Posts whose caption may not show the outcome; how many."""

        async def read(session: AsyncSession) -> list[tuple[ItemMessage, PressOutcome]]:
            pending = []
            for row in await HistoryRepository(session).captions_pending():
                assert row.queue_item_id is not None  # only a press sets the mark
                media = await MediaRepository(session).get(row.media_item_id)
                message = ItemMessage(
                    queue_id=row.queue_item_id,
                    chat_id=row.chat_id,
                    message_id=row.caption_pending_message_id,
                    body=None,
                    file_name=media.file_name if media else "?",
                    category=media.category if media else None,
                    caption=media.caption if media else None,
                )
                outcome = PressOutcome(
                    kind=OutcomeKind.ALREADY,
                    status=HistoryStatus(row.status),
                    acted_by_name=row.acted_by_name,
                    posting_method=PostingMethod(row.posting_method),
                    instagram_media_id=row.instagram_media_id,
                )
                pending.append((message, outcome))
            return pending

        pending = await in_transaction(
            self._parts.sessions,
            read,
            repeat=Idempotent("it only reads"),
            operation="autopost.captions",
        )
        for message, outcome in pending:
            logger.info("autopost.caption_repaired", queue_id=str(message.queue_id))
            await self._parts.recorder.settle_caption(message, outcome)
        return len(pending)
