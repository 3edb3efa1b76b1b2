"""🤖 Auto Post: claim, publish the Story, record it like a press (docs/architecture.md §7).

A Story cannot be deleted through the API, so a publish whose outcome is unknown
is never repeated blindly. The state lives on the queue row, where a restart, a
second process and a re-press all see it:

- `status = 'publishing'` with `autopost_claim_token`: someone holds the item
  until `lease_expires_at` (the database's now() + the holder's lease, renewed
  at each step; NULL = handed over). Only SQL against now() judges it.
- `instagram_creation_id`: the container made for this attempt.
- `instagram_publish_requested_at`: set (durably) before media_publish is sent.
  From then on only the container's `status_code` decides what happens next:
  PUBLISHED -> record it; FINISHED -> publish that same container (it publishes
  at most once); ERROR / EXPIRED -> give the item back, a new container may be made.
- `instagram_media_id`: published; recording it in the history is all that is left.

Rows nobody holds are resolved by `resolve` (the sweep, a re-press, the holder
itself after an unknown outcome). A recorded Auto Post whose caption may still
show a status line (the final edit was cancelled or failed, the database's answer
was lost) is marked on its history row; the sweep repairs the caption.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from aiogram import Bot
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.captions import final_line, notification_caption, with_status
from bot.keyboards import queue_keyboard
from bot.services.clock import Clock, utc_now
from bot.services.instagram import InstagramClient, InstagramError, InstagramFailure
from bot.services.instagram_accounts import InstagramAccounts
from bot.services.media_host import HostedMedia, MediaHost, MediaHostError, MediaToHost
from bot.services.periodic import every
from bot.services.press import OutcomeKind, PressOutcome, PressService, explain
from bot.telegram import edit_by_id_quietly
from bot.texts import AUTOPOST_UNRESOLVABLE
from db.errors import DatabaseUnavailableError
from db.models import PostingHistory, PostingQueueItem, User
from db.repositories import (
    ChatSettingsRepository,
    HistoryRepository,
    MediaRepository,
    Press,
    PressRepository,
    QueueRepository,
    TelegramIdentity,
    UserRepository,
)
from db.retry import Idempotent, Reread, in_idempotent_transaction, in_transaction
from db.vocabulary import HistoryStatus, MediaKind, PostingMethod, QueueStatus, Verdict

logger = structlog.get_logger(__name__)

CHECKING_LINE = "🔎 Checking with Instagram…"
PUBLISHING_LINE = "⏳ Publishing to Instagram…"
RECORDING_LINE = "✅ Published to Instagram; recording it…"
UNEXPECTED_LINE = "⚠️ Auto Post failed on an unexpected error (logged). Nothing was published."
DRY_RUN_LINE = "🧪 Dry run: Instagram accepted the story; nothing was published."
# Refusals Graph gives before it looks at the request (no token, over the rate):
# they stand even when the container's status cannot be read after them.
_REFUSED_UNREAD = frozenset({InstagramFailure.TOKEN_EXPIRED, InstagramFailure.RATE_LIMIT})
# How far before the publish request a Story may be stamped and still be ours.
_STORY_MATCH_SLACK = timedelta(minutes=2)


@dataclass(slots=True)
class _Progress:
    """How far a publish got; read when it is cancelled."""

    publish_requested: bool = False
    requested_at: datetime | None = None
    # The press statement landed: the row is recorded, only the caption is left.
    recorded: bool = False
    hosted: HostedMedia | None = None  # released once the outcome is settled


class AutoPostRefusal(StrEnum):
    """Why a press of 🤖 did not start a publish (besides the press outcomes)."""

    CHECKING = "checking"  # an earlier publish's outcome is being checked with Instagram
    SENDING = "sending"  # the item is still being sent to the chat


@dataclass(frozen=True, slots=True)
class AutoPostClaim:
    queue_id: uuid.UUID
    chat_id: int
    token: uuid.UUID
    presser: TelegramIdentity
    message_id: int | None
    body: str  # the notification caption (HTML) the status lines are appended to
    media: MediaToHost
    video: bool
    dry_run: bool


class AutoPostResult(StrEnum):
    RECORDED = "recorded"
    DRY_RUN = "dry_run"
    FAILED = "failed"  # nothing was published; the item has its buttons back
    CHECKING = "checking"  # the outcome is unknown (or not yet recorded): being resolved


@dataclass(frozen=True, slots=True)
class AutoPostOutcome:
    """How an Auto Post ended; a recorded one's Story id is `press.instagram_media_id`."""

    result: AutoPostResult
    press: PressOutcome | None = None
    error: InstagramError | None = None


@dataclass(frozen=True, slots=True)
class _Held:
    """A `publishing` row as the resolver took it, with what its captions need."""

    row: PostingQueueItem
    body: str
    presser: TelegramIdentity
    media: MediaToHost | None  # None: the media row is gone


def failed_line(error: InstagramError) -> str:
    """Plain text: the caption escapes it, a toast shows it as is."""
    return f"⚠️ Auto Post failed: {error.cause}. Nothing was published."


def interrupted_line() -> str:
    return "⚠️ Auto Post was interrupted before publishing; nothing was published."


class AutoPostService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        press_service: PressService,
        accounts: InstagramAccounts,
        media_host: MediaHost,
        bot: Bot,
        *,
        clock: Clock = utc_now,
        lease_seconds: float = 150.0,
        sweep_interval_seconds: float = 15.0,
        recheck_after_seconds: float = 2.0,
    ) -> None:
        self._sessions = sessions
        self._press = press_service
        self._accounts = accounts
        self._media_host = media_host
        self._bot = bot
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._sweep_interval = sweep_interval_seconds
        self._recheck_after = recheck_after_seconds

    # -- the press of 🤖 -------------------------------------------------------------

    async def claim(
        self,
        queue_id: uuid.UUID,
        chat_id: int,
        presser: TelegramIdentity,
        *,
        body: str | None = None,
        message_id: int | None = None,
    ) -> AutoPostClaim | AutoPostRefusal | PressOutcome:
        """Hold the item so a concurrent ✅ or ⏭️ cannot also win; or say why not."""
        token = uuid.uuid4()

        async def take(session: AsyncSession) -> AutoPostClaim | AutoPostRefusal | PressOutcome:
            # Kept so whoever finishes this Auto Post (maybe after a restart) names the presser.
            await UserRepository(session).upsert(presser)
            row = await QueueRepository(session).claim_for_autopost(
                queue_id,
                chat_id,
                token=token,
                requested_by=presser.telegram_user_id,
                lease=self._lease,
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
            self._sessions, take, repeat=Reread(recover), operation="autopost.claim"
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
            queue_id=row.id,
            chat_id=row.chat_id,
            token=token,
            presser=presser,
            message_id=row.telegram_message_id,
            body=body or notification_caption(media.file_name, media.category, media.caption),
            media=MediaToHost(media.file_path, MediaKind(media.media_kind), row.chat_id),
            video=media.media_kind == MediaKind.VIDEO,
            dry_run=chat.dry_run,
        )

    async def _why_not(
        self, session: AsyncSession, queue_id: uuid.UUID, chat_id: int
    ) -> AutoPostRefusal | PressOutcome:
        row = await QueueRepository(session).get(queue_id)
        if row is not None and row.chat_id == chat_id:
            if row.status in (QueueStatus.SENDING, QueueStatus.PENDING):
                return AutoPostRefusal.SENDING
            if row.status == QueueStatus.PUBLISHING and (
                row.instagram_publish_requested_at is not None
                or row.instagram_media_id is not None
                or row.lease_expires_at is None
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
        await self._show(claim.chat_id, claim.message_id, claim.body, PUBLISHING_LINE, None)
        progress = _Progress()
        try:
            outcome = await self._publish_steps(claim, progress)
        except Exception:
            # A bug or a surprise: never leave the message without buttons and the row held.
            logger.exception("autopost.crashed", queue_id=str(claim.queue_id))
            if progress.recorded:
                # Only the caption was left: its mark on the history row has the sweep fix it.
                return AutoPostOutcome(result=AutoPostResult.RECORDED)
            if progress.publish_requested:
                return await self._checking(claim)
            if await self._give_back(claim.queue_id, claim.token):
                await self._show_buttons(claim, UNEXPECTED_LINE)
            return AutoPostOutcome(result=AutoPostResult.FAILED)
        except asyncio.CancelledError:
            if progress.recorded:
                # The final edit was cut short: the history row's mark has the sweep finish it.
                logger.warning("autopost.caption_left_to_sweep", queue_id=str(claim.queue_id))
            elif progress.publish_requested:
                # Whoever runs next (this process's successor or another one) asks Instagram.
                logger.warning("autopost.handed_over_at_shutdown", queue_id=str(claim.queue_id))
                await self._checking(claim)
            else:
                logger.warning("autopost.given_back_at_shutdown", queue_id=str(claim.queue_id))
                if await self._give_back(claim.queue_id, claim.token):
                    await self._show_buttons(claim, interrupted_line())
            raise
        if progress.hosted is not None and outcome.result is not AutoPostResult.CHECKING:
            # Settled (published and recorded, or refused): Instagram needs the copy no more.
            # An unknown outcome keeps it; the store's lifecycle rule removes it later.
            await self._media_host.release(progress.hosted)
        return outcome

    async def _host(self, claim: AutoPostClaim, progress: _Progress) -> str:
        """The public URL Instagram downloads the (prepared) media from."""
        try:
            progress.hosted = await self._media_host.url_for(claim.media)
        except MediaHostError as error:
            raise InstagramError(InstagramFailure.MEDIA_HOSTING, str(error)) from None
        return progress.hosted.url

    async def _publish_steps(self, claim: AutoPostClaim, progress: _Progress) -> AutoPostOutcome:
        """create -> wait until FINISHED -> (dry run stops here) -> marker -> publish -> record.

        A check that may refuse before anything exists on Instagram (the daily
        publishing quota, the token's age) belongs before the first step: raising
        InstagramError there gives the item back with the cause in the caption.
        """
        try:
            instagram = self._client(claim.chat_id)
            # The daily publishing quota (#14): at the limit nothing is created.
            await self._accounts.check_quota(claim.chat_id)
            media_url = await self._host(claim, progress)
            container = await instagram.create_story_container(media_url, video=claim.video)
            if not await self._renew(claim, instagram_creation_id=container):
                return AutoPostOutcome(result=AutoPostResult.CHECKING)
            await instagram.wait_until_ready(container)
            if claim.dry_run:
                logger.info("autopost.dry_run", queue_id=str(claim.queue_id))
                if await self._give_back(claim.queue_id, claim.token):
                    await self._show_buttons(claim, DRY_RUN_LINE)
                return AutoPostOutcome(result=AutoPostResult.DRY_RUN)
            # Durable before the request leaves: from here on a repeat is resolved, not redone.
            requested_at = self._clock()
            if not await self._renew(claim, instagram_publish_requested_at=requested_at):
                return AutoPostOutcome(result=AutoPostResult.CHECKING)
            progress.publish_requested = True
            progress.requested_at = requested_at
            media_id = await instagram.publish(container)
        except InstagramError as error:
            if progress.publish_requested and not error.outcome_unknown:
                # A refusal is no proof: Graph answers transient errors with a 4xx too,
                # and Instagram has published media whose publish call answered one.
                settled = await self._after_refused_publish(
                    claim, instagram, container, error, progress.requested_at
                )
                if settled is not None:
                    return settled
            elif progress.publish_requested:
                logger.warning(
                    "autopost.outcome_unknown",
                    queue_id=str(claim.queue_id),
                    reference=error.reference,
                )
                return await self._checking(claim, error)
            logger.warning(
                "autopost.failed",
                queue_id=str(claim.queue_id),
                failure=error.failure.value,
                reference=error.reference,
                detail=error.detail,
            )
            if await self._give_back(claim.queue_id, claim.token):
                await self._show_buttons(claim, failed_line(error))
            else:
                await self._checking(claim)
            return AutoPostOutcome(result=AutoPostResult.FAILED, error=error)
        except DatabaseUnavailableError:
            # A step could not be written. The resolver reads what did land:
            # without the marker it gives the item back, with it it asks Instagram.
            return await self._checking(claim)
        logger.info("autopost.published", queue_id=str(claim.queue_id), media_id=media_id)
        return await self._record_claim(claim, media_id, progress)

    async def _after_refused_publish(
        self,
        claim: AutoPostClaim,
        instagram: InstagramClient,
        container: str,
        refusal: InstagramError,
        requested_at: datetime | None,
    ) -> AutoPostOutcome | None:
        """Ask the container after a refused publish: PUBLISHED is recorded, never redone.

        None when the refusal stands (the container did not publish) and the item
        may be given back; a status that cannot be read leaves the outcome unknown.
        """
        try:
            status = await instagram.container_status(container)
        except InstagramError as error:
            if refusal.failure in _REFUSED_UNREAD:
                return None  # turned away at the door: the team can post by hand now
            logger.warning(
                "autopost.refusal_unchecked",
                queue_id=str(claim.queue_id),
                reference=error.reference,
            )
            return await self._checking(claim, refusal)
        if status.code == "PUBLISHED":
            logger.warning(
                "autopost.published_despite_refusal",
                queue_id=str(claim.queue_id),
                reference=refusal.reference,
            )
            media_id = await self._find_story(instagram, requested_at)
            return await self._record_claim(claim, media_id)
        if status.code in ("FINISHED", "ERROR", "EXPIRED"):
            return None
        # IN_PROGRESS: the publish may still be going through.
        return await self._checking(claim, refusal)

    async def _checking(
        self, claim: AutoPostClaim, error: InstagramError | None = None
    ) -> AutoPostOutcome:
        """Say so, then let go (the resolver's edits come after ours): the outcome is CHECKING."""
        await self._show(claim.chat_id, claim.message_id, claim.body, CHECKING_LINE)
        await self._hand_over(claim.queue_id, claim.token)
        return AutoPostOutcome(result=AutoPostResult.CHECKING, error=error)

    async def _record_claim(
        self, claim: AutoPostClaim, media_id: str | None, progress: _Progress | None = None
    ) -> AutoPostOutcome:
        return await self._record(
            claim.queue_id,
            claim.token,
            claim.chat_id,
            claim.message_id,
            claim.body,
            media_id,
            claim.presser,
            progress,
        )

    async def _record(
        self,
        queue_id: uuid.UUID,
        token: uuid.UUID,
        chat_id: int,
        message_id: int | None,
        body: str,
        media_id: str | None,
        presser: TelegramIdentity,
        progress: _Progress | None = None,
    ) -> AutoPostOutcome:
        """Keep the media id on the row, record the press, then show the recorded outcome.

        The resolver finishes a failure; the sweep repairs a caption left unsettled.
        """
        if media_id is not None:
            await self._renew_quietly(queue_id, token, instagram_media_id=media_id)
        press = Press(
            queue_id=queue_id,
            chat_id=chat_id,
            status=Verdict.POSTED,
            presser=presser,
            telegram_message_id=message_id,
            posting_method=PostingMethod.INSTAGRAM_API,
            instagram_media_id=media_id,
            completes_autopost=True,
        )
        try:
            outcome = await self._press.record(press)
        except DatabaseUnavailableError:
            # The statement may have landed with its answer lost: read before saying so.
            landed = await self._recorded_meanwhile(press)
            if landed is None:
                logger.error("autopost.unrecorded", queue_id=str(queue_id), media_id=media_id)
                await self._show(chat_id, message_id, body, RECORDING_LINE)
                await self._hand_over(queue_id, token)
                return AutoPostOutcome(result=AutoPostResult.CHECKING)
            outcome = landed
        if progress is not None:
            progress.recorded = True
        if outcome.kind in (OutcomeKind.RECORDED, OutcomeKind.ALREADY) and outcome.status:
            await self._settle_caption(queue_id, chat_id, message_id, body, final_line(outcome))
        return AutoPostOutcome(result=AutoPostResult.RECORDED, press=outcome)

    async def _recorded_meanwhile(self, press: Press) -> PressOutcome | None:
        """The press's history row, if its statement landed after all; None if not or unknown."""

        async def read(session: AsyncSession) -> PressOutcome | None:
            state = await PressRepository(session).state(press.queue_id)
            outcome = explain(state, press, after_lost_connection=True)
            if outcome is None or outcome.status is None:
                return None
            return outcome

        try:
            return await in_transaction(
                self._sessions,
                read,
                repeat=Idempotent("it only reads"),
                operation="autopost.reread",
            )
        except DatabaseUnavailableError:
            logger.warning("autopost.reread_failed", queue_id=str(press.queue_id))
            return None

    async def _settle_caption(
        self, queue_id: uuid.UUID, chat_id: int, message_id: int | None, body: str, line: str
    ) -> None:
        """Show the recorded outcome; only once it is shown is the history row's mark cleared."""
        if message_id is not None and not await edit_by_id_quietly(
            self._bot, chat_id, message_id, with_status(body, line), None
        ):
            return  # the mark stays: the next sweep edits again

        async def settled(session: AsyncSession) -> None:
            await HistoryRepository(session).caption_settled(queue_id)

        try:
            await in_idempotent_transaction(
                self._sessions, "autopost.caption_settled", settled, "it clears a mark"
            )
        except DatabaseUnavailableError:
            # The mark stays: the next sweep repeats the same edit, which changes nothing.
            logger.warning("autopost.caption_mark_kept", queue_id=str(queue_id))

    async def settle_captions(self) -> int:
        """Repair recorded Auto Posts whose caption may not show the outcome; how many."""

        async def read(session: AsyncSession) -> list[tuple[PostingHistory, str]]:
            pending = []
            for row in await HistoryRepository(session).captions_pending():
                media = await MediaRepository(session).get(row.media_item_id)
                body = notification_caption(
                    media.file_name if media else "?",
                    media.category if media else None,
                    media.caption if media else None,
                )
                pending.append((row, body))
            return pending

        pending = await in_transaction(
            self._sessions, read, repeat=Idempotent("it only reads"), operation="autopost.captions"
        )
        for row, body in pending:
            assert row.queue_item_id is not None  # only a press sets the mark
            outcome = PressOutcome(
                kind=OutcomeKind.ALREADY,
                status=HistoryStatus(row.status),
                acted_by_name=row.acted_by_name,
                posting_method=PostingMethod(row.posting_method),
                instagram_media_id=row.instagram_media_id,
            )
            logger.info("autopost.caption_repaired", queue_id=str(row.queue_item_id))
            await self._settle_caption(
                row.queue_item_id,
                row.chat_id,
                row.caption_pending_message_id,
                body,
                final_line(outcome),
            )
        return len(pending)

    # -- resolving rows nobody holds ------------------------------------------------------

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
            self._sessions, read, repeat=Idempotent("it only reads"), operation="autopost.sweep"
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
        token = uuid.uuid4()
        held = await self._take_lease(queue_id, token)
        if held is None:
            return None
        try:
            outcome = await self._resolve_held(held, token)
        except BaseException:
            # Cancelled, the database gone, or a surprise: the next sweep tries again.
            await self._hand_over(queue_id, token)
            raise
        if outcome.result is not AutoPostResult.CHECKING and held.media is not None:
            # Settled: the hosted copy (uploaded by whoever pressed) is needed no more.
            await self._media_host.release_item(held.media)
        return outcome

    async def _resolve_held(self, held: _Held, token: uuid.UUID) -> AutoPostOutcome:
        row = held.row
        queue_id, chat_id, message_id = row.id, row.chat_id, row.telegram_message_id
        if row.instagram_media_id is not None:
            media_id = row.instagram_media_id
            return await self._record(
                queue_id, token, chat_id, message_id, held.body, media_id, held.presser
            )
        if row.instagram_publish_requested_at is None or row.instagram_creation_id is None:
            # No publish request ever left: nothing can have been published.
            if await self._give_back(queue_id, token):
                await self._show(
                    chat_id,
                    message_id,
                    held.body,
                    interrupted_line(),
                    self._buttons(queue_id, chat_id),
                )
            logger.info("autopost.given_back", queue_id=str(queue_id))
            return AutoPostOutcome(result=AutoPostResult.FAILED)
        return await self._settle_container(held, token)

    async def _settle_container(self, held: _Held, token: uuid.UUID) -> AutoPostOutcome:
        row = held.row
        queue_id, chat_id, message_id = row.id, row.chat_id, row.telegram_message_id
        assert row.instagram_creation_id is not None
        container = row.instagram_creation_id
        if self._accounts.client_for(chat_id) is None:
            return await self._unresolvable(held, token)
        try:
            instagram = self._client(row.chat_id)
            status = await instagram.container_status(container)
        except InstagramError as error:
            logger.warning(
                "autopost.still_unknown", queue_id=str(queue_id), reference=error.reference
            )
            if not error.outcome_unknown and error.failure is not InstagramFailure.UNREACHABLE:
                # Instagram answered but won't tell (e.g. error 190): say what blocks it.
                line = f"{CHECKING_LINE} Instagram answered: {error.cause}."
                await self._show(chat_id, message_id, held.body, line)
            await self._hand_over(queue_id, token)
            return AutoPostOutcome(result=AutoPostResult.CHECKING, error=error)
        logger.info("autopost.container_status", queue_id=str(queue_id), status=status.code)
        if status.code == "PUBLISHED":
            media_id = await self._find_story(instagram, row.instagram_publish_requested_at)
            return await self._record(
                queue_id, token, chat_id, message_id, held.body, media_id, held.presser
            )
        if status.code in ("ERROR", "EXPIRED"):
            return await self._fail(held, token, status.error())
        if status.code != "FINISHED":
            # IN_PROGRESS (or something new): ask again on the next sweep.
            await self._hand_over(queue_id, token)
            return AutoPostOutcome(result=AutoPostResult.CHECKING)
        # Never published: publish this same container (it publishes at most once).
        await self._renew_quietly(queue_id, token)
        try:
            media_id = await instagram.publish(container)
        except InstagramError as error:
            if not error.outcome_unknown:
                # Refused; but the first request may have landed meanwhile: look again.
                try:
                    again = await instagram.container_status(container)
                except InstagramError as lookup:
                    # Unknown still: the sweep asks again.
                    logger.warning(
                        "autopost.recheck_failed",
                        queue_id=str(queue_id),
                        reference=lookup.reference,
                    )
                else:
                    if again.code == "PUBLISHED":
                        media_id = await self._find_story(
                            instagram, row.instagram_publish_requested_at
                        )
                        return await self._record(
                            queue_id, token, chat_id, message_id, held.body, media_id, held.presser
                        )
                    if again.code in ("FINISHED", "ERROR", "EXPIRED"):
                        return await self._fail(held, token, error)
            await self._hand_over(queue_id, token)
            return AutoPostOutcome(result=AutoPostResult.CHECKING, error=error)
        logger.info("autopost.published_on_resolve", queue_id=str(queue_id), media_id=media_id)
        return await self._record(
            queue_id, token, chat_id, message_id, held.body, media_id, held.presser
        )

    async def _fail(self, held: _Held, token: uuid.UUID, error: InstagramError) -> AutoPostOutcome:
        """Nothing was published: the item gets its buttons back and the caption says why."""
        row = held.row
        logger.warning(
            "autopost.failed",
            queue_id=str(row.id),
            failure=error.failure.value,
            reference=error.reference,
        )
        if not await self._give_back(row.id, token):
            return AutoPostOutcome(result=AutoPostResult.CHECKING, error=error)
        await self._show(
            row.chat_id,
            row.telegram_message_id,
            held.body,
            failed_line(error),
            self._buttons(row.id, row.chat_id),
        )
        return AutoPostOutcome(result=AutoPostResult.FAILED, error=error)

    async def _unresolvable(self, held: _Held, token: uuid.UUID) -> AutoPostOutcome:
        """The chat's account was removed while the outcome was unknown: nobody can ask.

        The buttons come back (✅ and ⏭️ work again) and the caption says to look
        on Instagram first: the earlier publish may have gone live.
        """
        row = held.row
        logger.warning("autopost.unresolvable", queue_id=str(row.id), chat_id=row.chat_id)
        if not await self._give_back(row.id, token):
            return AutoPostOutcome(result=AutoPostResult.CHECKING)
        await self._show(
            row.chat_id,
            row.telegram_message_id,
            held.body,
            AUTOPOST_UNRESOLVABLE,
            self._buttons(row.id, row.chat_id),
        )
        return AutoPostOutcome(result=AutoPostResult.FAILED)

    def _client(self, chat_id: int) -> InstagramClient:
        """The chat's own account (#13), with its current token."""
        client = self._accounts.client_for(chat_id)
        if client is None:
            raise InstagramError(InstagramFailure.API, "no Instagram account for this chat")
        return client

    async def _find_story(
        self, instagram: InstagramClient, requested_at: datetime | None
    ) -> str | None:
        """The Story the publish made, when exactly one went live since it was requested."""
        try:
            stories = await instagram.live_stories()
        except InstagramError as error:
            logger.warning("autopost.stories_unavailable", reference=error.reference)
            return None
        if requested_at is None:
            return None
        since = requested_at - _STORY_MATCH_SLACK
        candidates = [s for s in stories if s.posted_at is not None and s.posted_at >= since]
        return candidates[0].media_id if len(candidates) == 1 else None

    async def _take_lease(self, queue_id: uuid.UUID, token: uuid.UUID) -> _Held | None:
        async def take(session: AsyncSession) -> _Held | None:
            row = await QueueRepository(session).take_autopost_lease(queue_id, token, self._lease)
            return None if row is None else await self._held(session, row)

        async def recover(session: AsyncSession) -> _Held | None:
            row = await QueueRepository(session).get(queue_id)
            if row is None or row.autopost_claim_token != token:
                return None
            return await self._held(session, row)

        return await in_transaction(
            self._sessions, take, repeat=Reread(recover), operation="autopost.lease"
        )

    async def _held(self, session: AsyncSession, row: PostingQueueItem) -> _Held:
        media = await MediaRepository(session).get(row.media_item_id)
        body = notification_caption(
            media.file_name if media else "?",
            media.category if media else None,
            media.caption if media else None,
        )
        presser = await _identity(session, row.autopost_requested_by)
        hosted = (
            None
            if media is None
            else MediaToHost(media.file_path, MediaKind(media.media_kind), row.chat_id)
        )
        return _Held(row=row, body=body, presser=presser, media=hosted)

    # -- small writes -----------------------------------------------------------------

    async def _renew(self, claim: AutoPostClaim, **values: object) -> bool:
        """Extend our hold with the step's values; False (and say so) if we lost it."""

        async def renew(session: AsyncSession) -> bool:
            return await QueueRepository(session).renew_autopost(
                claim.queue_id, claim.token, self._lease, **values
            )

        held = await in_transaction(
            self._sessions,
            renew,
            repeat=Idempotent("it sets the same values under the same token"),
            operation="autopost.step",
        )
        if not held:
            # Taken over after our lease ran out: the new holder owns the caption now.
            logger.warning("autopost.hold_lost", queue_id=str(claim.queue_id))
        return held

    async def _renew_quietly(self, queue_id: uuid.UUID, token: uuid.UUID, **values: object) -> None:
        # Unwritten, the container's status finds the media again: a lost id costs no Story.
        await self._write_held(
            "autopost.remember",
            lambda queue: queue.renew_autopost(queue_id, token, self._lease, **values),
            why="it sets the same values under the same token",
            queue_id=queue_id,
            **values,
        )

    async def _give_back(self, queue_id: uuid.UUID, token: uuid.UUID) -> bool:
        """The item back to `sent` (nothing was published); False if that could not be written."""
        # Unwritten, it stays held: the lease runs out and the sweep settles the row.
        return await self._write_held(
            "autopost.release",
            lambda queue: queue.release_autopost(queue_id, token),
            why="it only changes a row our token still holds",
            queue_id=queue_id,
        )

    async def _hand_over(self, queue_id: uuid.UUID, token: uuid.UUID) -> None:
        # Unwritten, the lease runs out by itself; the sweep then resolves the row.
        await self._write_held(
            "autopost.hand_over",
            lambda queue: queue.hand_over_autopost(queue_id, token),
            why="it clears the lease of a row our token holds",
            queue_id=queue_id,
        )

    async def _write_held(
        self,
        operation: str,
        write: Callable[[QueueRepository], Awaitable[object]],
        *,
        why: str,
        queue_id: uuid.UUID,
        **log_values: object,
    ) -> bool:
        """One write to a row our token holds; False (logged) when the database stayed away."""

        async def work(session: AsyncSession) -> None:
            await write(QueueRepository(session))

        try:
            await in_idempotent_transaction(self._sessions, operation, work, why)
        except DatabaseUnavailableError:
            logger.error(f"{operation}_failed", queue_id=str(queue_id), **log_values)
            return False
        return True

    # -- the message ----------------------------------------------------------------------

    def _buttons(self, queue_id: uuid.UUID, chat_id: int) -> InlineKeyboardMarkup:
        return queue_keyboard(queue_id, instagram=self._accounts.autopost_available(chat_id))

    async def _show_buttons(self, claim: AutoPostClaim, line: str) -> None:
        await self._show(
            claim.chat_id,
            claim.message_id,
            claim.body,
            line,
            self._buttons(claim.queue_id, claim.chat_id),
        )

    async def _show(
        self,
        chat_id: int,
        message_id: int | None,
        body: str,
        line: str,
        buttons: InlineKeyboardMarkup | None = None,
    ) -> None:
        """Best effort: the state is on the row; a failed edit is repaired by the next one."""
        if message_id is None:
            return
        # A text when it is the notice sent for an item whose send Telegram never confirmed.
        await edit_by_id_quietly(self._bot, chat_id, message_id, with_status(body, line), buttons)


async def _identity(session: AsyncSession, telegram_user_id: int | None) -> TelegramIdentity:
    if telegram_user_id is None:
        return TelegramIdentity(0)
    user = (
        await session.execute(select(User).where(User.telegram_user_id == telegram_user_id))
    ).scalar_one_or_none()
    if user is None:
        return TelegramIdentity(telegram_user_id)
    return TelegramIdentity(user.telegram_user_id, user.username, user.first_name, user.last_name)
