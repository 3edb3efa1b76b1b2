"""The press of 🤖: claim the item, make the container, publish it once, record it.

A Story cannot be deleted through the API, so a publish whose outcome is
unknown is never repeated blindly: the marker is durable before media_publish
leaves, and from then on only the resolver (resolve.py) decides.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import Press, TelegramIdentity
from bot.services.autopost.board import AutoPostStep, GiveBackReason
from bot.services.autopost.holds import Hold, HoldProgress, hold_from
from bot.services.autopost.lookups import AfterRefusal, chat_client, find_story, recheck_refused
from bot.services.autopost.parts import AutoPostParts
from bot.services.autopost.phases import AutoPostPhase, phase_of
from bot.services.autopost.results import (
    AutoPostClaim,
    AutoPostOutcome,
    AutoPostRefusal,
    AutoPostResult,
)
from bot.services.instagram import InstagramError, InstagramFailure
from bot.services.media_host import HostedMedia, MediaHostError, MediaToHost
from bot.services.media_prep import ManualOnly
from bot.services.press import OutcomeKind, PressOutcome, explain
from db.errors import DatabaseUnavailableError
from db.models import PostingQueueItem
from db.repositories import (
    ChatSettingsRepository,
    MediaRepository,
    PressRepository,
    QueueRepository,
    UserRepository,
)
from db.retry import Reread, in_transaction
from db.vocabulary import Framing, MediaKind, PostingMethod, QueueStatus, Verdict

logger = structlog.get_logger(__name__)

# How long preparing and uploading may keep renewing the hold: past it, the lease runs
# out and the sweep gives the item back (a hung transcode never holds it for good).
HOSTING_PATIENCE = timedelta(minutes=30)
# Phases in which a publish request may have left: a repeat is resolved, never redone.
_REQUESTED = frozenset({AutoPostPhase.PUBLISH_REQUESTED, AutoPostPhase.PUBLISHED})


class Publisher:
    def __init__(self, parts: AutoPostParts) -> None:
        self._parts = parts

    async def claim(
        self,
        queue_id: uuid.UUID,
        chat_id: int,
        presser: TelegramIdentity,
        *,
        body: str | None = None,
        message_id: int | None = None,
    ) -> AutoPostClaim | AutoPostRefusal | PressOutcome | ManualOnly:
        """Hold the item so a concurrent ✅ or ⏭️ cannot also win; or say why not."""
        token = uuid.uuid4()

        async def take(
            session: AsyncSession,
        ) -> AutoPostClaim | AutoPostRefusal | PressOutcome | ManualOnly:
            # Kept so whoever finishes this Auto Post (maybe after a restart) names the presser.
            await UserRepository(session).upsert(presser)
            row = await QueueRepository(session).claim_for_autopost(
                queue_id,
                chat_id,
                token=token,
                requested_by=presser.telegram_user_id,
                lease=self._parts.holds.lease,
                message_id=message_id,
            )
            if row is None:
                return await self._why_not(session, queue_id, chat_id)
            return await self._claim_of(session, row, token, presser, body)

        async def recover(session: AsyncSession) -> AutoPostClaim | None:
            # The claim's COMMIT may have landed unheard: the token says it is ours.
            row = await QueueRepository(session).get(queue_id)
            if (
                row is None
                or row.status != QueueStatus.PUBLISHING
                or row.autopost_claim_token != token
            ):
                return None
            return await self._claim_of(session, row, token, presser, body)

        return await in_transaction(
            self._parts.sessions, take, repeat=Reread(recover), operation="autopost.claim"
        )

    async def _claim_of(
        self,
        session: AsyncSession,
        row: PostingQueueItem,
        token: uuid.UUID,
        presser: TelegramIdentity,
        body: str | None,
    ) -> AutoPostClaim:
        media = await MediaRepository(session).get(row.media_item_id)
        chat = await ChatSettingsRepository(session).get(row.chat_id)
        if media is None or chat is None:  # both are foreign keys of the row
            raise LookupError(f"queue row {row.id} without its media or chat")
        return AutoPostClaim(
            hold=hold_from(row, media, token, presser, body, framing=Framing(chat.photo_framing)),
            media=MediaToHost(
                media.file_path,
                MediaKind(media.media_kind),
                row.chat_id,
                Framing(chat.photo_framing),
            ),
            video=media.media_kind == MediaKind.VIDEO,
            dry_run=chat.dry_run,
        )

    async def _why_not(
        self, session: AsyncSession, queue_id: uuid.UUID, chat_id: int
    ) -> AutoPostRefusal | PressOutcome | ManualOnly:
        row = await QueueRepository(session).get(queue_id)
        if row is not None and row.chat_id == chat_id:
            media = await MediaRepository(session).get(row.media_item_id)
            if media is not None and media.autopost_refusal is not None:
                return ManualOnly(media.autopost_refusal)
            phase = phase_of(
                QueueStatus(row.status),
                instagram_creation_id=row.instagram_creation_id,
                instagram_publish_requested_at=row.instagram_publish_requested_at,
                instagram_media_id=row.instagram_media_id,
            )
            if phase is AutoPostPhase.SENDING:
                return AutoPostRefusal.SENDING
            if phase in _REQUESTED or (
                phase is not AutoPostPhase.OFFERED and row.lease_expires_at is None
            ):
                return AutoPostRefusal.CHECKING
            return PressOutcome(kind=OutcomeKind.BUSY)
        # Gone (someone acted: a later statement sees their history row) or another chat's.
        state = await PressRepository(session).state(queue_id)
        probe = Press(
            queue_id=queue_id,
            chat_id=chat_id,
            status=Verdict.POSTED,
            presser=TelegramIdentity(0),
            posting_method=PostingMethod.INSTAGRAM_API,
        )
        return explain(state, probe, after_lost_connection=False) or PressOutcome(
            kind=OutcomeKind.GONE
        )

    async def publish(self, claim: AutoPostClaim) -> AutoPostOutcome:
        """Create the container, wait for it, publish it once; say what happened in the caption.

        Cancelled (shutdown), the item is given back (no publish request left yet)
        or handed to the resolver, never left held.
        """
        await self._parts.board.show_progress(claim.hold.message, AutoPostStep.PUBLISHING)
        progress = HoldProgress(claim.hold)
        try:
            outcome = await self._publish_steps(claim, progress)
        except Exception:
            # A bug or a surprise: never leave the message without buttons and the row held.
            logger.exception("autopost.crashed", queue_id=str(claim.hold.queue_id))
            if progress.recorded:
                # Only the caption was left: its mark on the history row has the sweep fix it.
                return AutoPostOutcome(result=AutoPostResult.RECORDED)
            if progress.hold.phase in _REQUESTED:
                return await self._checking(progress.hold)
            await self._give_back(progress.hold, GiveBackReason.UNEXPECTED)
            return AutoPostOutcome(result=AutoPostResult.FAILED)
        except asyncio.CancelledError:
            queue_id = str(claim.hold.queue_id)
            if progress.recorded:
                # The final edit was cut short: the history row's mark has the sweep finish it.
                logger.warning("autopost.caption_left_to_sweep", queue_id=queue_id)
            elif progress.hold.phase in _REQUESTED:
                # Whoever runs next (this process's successor or another one) asks Instagram.
                logger.warning("autopost.handed_over_at_shutdown", queue_id=queue_id)
                await self._checking(progress.hold)
            else:
                logger.warning("autopost.given_back_at_shutdown", queue_id=queue_id)
                await self._give_back(progress.hold, GiveBackReason.INTERRUPTED)
            raise
        if progress.hosted is not None and outcome.result is not AutoPostResult.CHECKING:
            # Settled (published and recorded, or refused): Instagram needs the copy no more.
            # An unknown outcome keeps it; the resolver releases it once it settles the row.
            await self._parts.media_host.release(progress.hosted, claim.media)
        return outcome

    async def _host(self, claim: AutoPostClaim, progress: HoldProgress) -> HostedMedia | None:
        """Where Instagram downloads the (prepared) media from; None if the hold was lost.

        Preparing and uploading a long video may outlast the hold's lease, so the
        hold is renewed meanwhile, for `HOSTING_PATIENCE` at most: a hung transcode
        then lets it lapse, and the sweep gives the item back.
        """
        lost = asyncio.Event()
        renewing = asyncio.create_task(self._keep_holding(progress, lost))
        try:
            progress.hosted = await self._parts.media_host.url_for(claim.media)
        except MediaHostError as error:
            raise InstagramError(InstagramFailure.MEDIA_HOSTING, str(error)) from None
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
        return None if lost.is_set() else progress.hosted

    async def _keep_holding(self, progress: HoldProgress, lost: asyncio.Event) -> None:
        every = self._parts.holds.lease.total_seconds() / 3
        for _ in range(max(1, int(HOSTING_PATIENCE.total_seconds() / every))):
            await asyncio.sleep(every)
            try:
                if await self._parts.holds.advance(progress.hold) is None:
                    lost.set()  # another holder owns it: nothing is created for us
                    return
            except Exception:
                logger.exception("autopost.renew_failed", queue_id=str(progress.hold.queue_id))

    async def _publish_steps(self, claim: AutoPostClaim, progress: HoldProgress) -> AutoPostOutcome:
        """create -> wait until FINISHED -> (dry run stops here) -> marker -> publish -> record.

        A check that may refuse before anything exists on Instagram (the daily
        publishing quota, the token's age) belongs before the first step: raising
        InstagramError there gives the item back with the cause in the caption.
        """
        queue_id = claim.hold.queue_id
        try:
            instagram = chat_client(self._parts.accounts, claim.hold.chat_id)
            # The daily publishing quota: at the limit nothing is created.
            await self._parts.accounts.check_quota(claim.hold.chat_id)
            hosted = await self._host(claim, progress)
            if hosted is None:
                return AutoPostOutcome(result=AutoPostResult.CHECKING)
            # The prepared file decides the container's kind: a GIF goes as a JPEG photo.
            video = claim.video if hosted.video is None else hosted.video
            container = await instagram.create_story_container(hosted.url, video=video)
            made = await self._parts.holds.advance(progress.hold, instagram_creation_id=container)
            if made is None:
                return AutoPostOutcome(result=AutoPostResult.CHECKING)
            progress.hold = made
            await instagram.wait_until_ready(container)
            if claim.dry_run:
                logger.info("autopost.dry_run", queue_id=str(queue_id))
                await self._give_back(progress.hold, GiveBackReason.DRY_RUN)
                return AutoPostOutcome(result=AutoPostResult.DRY_RUN)
            # Durable before the request leaves: from here on a repeat is resolved, not redone.
            marked = await self._parts.holds.advance(
                progress.hold, instagram_publish_requested_at=self._parts.clock()
            )
            if marked is None:
                return AutoPostOutcome(result=AutoPostResult.CHECKING)
            progress.hold = marked
            media_id = await instagram.publish(container)
        except InstagramError as error:
            hold = progress.hold
            if hold.phase in _REQUESTED and not error.outcome_unknown:
                after = await recheck_refused(
                    instagram, container, error, earlier_request=False, queue_id=queue_id
                )
                if after is AfterRefusal.PUBLISHED:
                    story = await find_story(instagram, hold.instagram_publish_requested_at)
                    return await self._parts.recorder.record(progress, story)
                if after is AfterRefusal.UNKNOWN:
                    return await self._checking(hold, error)
            elif hold.phase in _REQUESTED:
                logger.warning(
                    "autopost.outcome_unknown", queue_id=str(queue_id), reference=error.reference
                )
                return await self._checking(hold, error)
            logger.warning(
                "autopost.failed",
                queue_id=str(queue_id),
                failure=error.failure.value,
                reference=error.reference,
                detail=error.detail,
            )
            if not await self._give_back(hold, GiveBackReason.FAILED, error):
                await self._checking(hold)
            return AutoPostOutcome(result=AutoPostResult.FAILED, error=error)
        except DatabaseUnavailableError:
            # A step could not be written. The resolver reads what did land:
            # without the marker it gives the item back, with it it asks Instagram.
            return await self._checking(progress.hold)
        logger.info("autopost.published", queue_id=str(queue_id), media_id=media_id)
        return await self._parts.recorder.record(progress, media_id)

    async def _give_back(
        self, hold: Hold, reason: GiveBackReason, error: InstagramError | None = None
    ) -> bool:
        """The buttons back, saying why; False when the release could not be written."""
        if not await self._parts.holds.give_back(hold):
            return False
        await self._parts.board.restore_buttons(hold.message, reason, error=error)
        return True

    async def _checking(self, hold: Hold, error: InstagramError | None = None) -> AutoPostOutcome:
        """Say so, then let go (the resolver's edits come after ours): the outcome is CHECKING."""
        await self._parts.board.show_progress(hold.message, AutoPostStep.CHECKING)
        await self._parts.holds.hand_over(hold)
        return AutoPostOutcome(result=AutoPostResult.CHECKING, error=error)
