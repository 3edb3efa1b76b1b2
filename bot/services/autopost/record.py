"""Recording a published Auto Post like a press, and settling its caption after."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import Press
from bot.services.autopost.board import AutoPostBoard, AutoPostStep, ItemMessage
from bot.services.autopost.holds import HoldProgress, Holds
from bot.services.autopost.phases import AutoPostPhase, check_transition
from bot.services.autopost.results import AutoPostOutcome, AutoPostResult
from bot.services.press import OutcomeKind, PressOutcome, PressService, explain
from db.errors import DatabaseUnavailableError
from db.repositories import HistoryRepository, PressRepository
from db.retry import Idempotent, in_idempotent_transaction, in_transaction
from db.vocabulary import PostingMethod, Verdict

logger = structlog.get_logger(__name__)


class Recorder:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        press_service: PressService,
        holds: Holds,
        board: AutoPostBoard,
    ) -> None:
        self._sessions = sessions
        self._press = press_service
        self._holds = holds
        self._board = board

    async def record(self, progress: HoldProgress, media_id: str | None = None) -> AutoPostOutcome:
        """Keep the media id on the row, record the press, then show the recorded outcome.

        The resolver finishes a failure; the sweep repairs a caption left unsettled.
        """
        hold = progress.hold
        if media_id is not None:
            hold = progress.hold = await self._holds.advance_quietly(
                hold, instagram_media_id=media_id
            )
        check_transition(hold.phase, AutoPostPhase.SETTLED)
        press = Press(
            queue_id=hold.queue_id,
            chat_id=hold.chat_id,
            status=Verdict.POSTED,
            presser=hold.presser,
            telegram_message_id=hold.message.message_id,
            posting_method=PostingMethod.INSTAGRAM_API,
            instagram_media_id=media_id,
            completes_autopost=True,
        )
        try:
            outcome = await self._press.record(press)
        except DatabaseUnavailableError:
            # The statement may have landed with its answer lost: read before saying so.
            landed = await self.recorded_meanwhile(press)
            if landed is None:
                logger.error("autopost.unrecorded", queue_id=str(hold.queue_id), media_id=media_id)
                await self._board.show_progress(hold.message, AutoPostStep.RECORDING)
                await self._holds.hand_over(hold)
                return AutoPostOutcome(result=AutoPostResult.CHECKING)
            outcome = landed
        progress.recorded = True
        if outcome.kind in (OutcomeKind.RECORDED, OutcomeKind.ALREADY) and outcome.status:
            await self.settle_caption(hold.message, outcome)
        return AutoPostOutcome(result=AutoPostResult.RECORDED, press=outcome)

    async def recorded_meanwhile(self, press: Press) -> PressOutcome | None:
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

    async def settle_caption(self, message: ItemMessage, outcome: PressOutcome) -> None:
        """Show the recorded outcome; only once it is shown is the history row's mark cleared."""
        if not await self._board.show_outcome(message, outcome):
            return  # the mark stays: the next sweep edits again

        async def settled(session: AsyncSession) -> None:
            await HistoryRepository(session).caption_settled(message.queue_id)

        try:
            await in_idempotent_transaction(
                self._sessions,
                settled,
                operation="autopost.caption_settled",
                because="it clears a mark",
            )
        except DatabaseUnavailableError:
            # The mark stays: the next sweep repeats the same edit, which changes nothing.
            logger.warning("autopost.caption_mark_kept", queue_id=str(message.queue_id))
