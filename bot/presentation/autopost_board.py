"""Auto Post's board in the team chat: its progress and end, edited into the item's message."""

from __future__ import annotations

from collections.abc import Callable

from aiogram import Bot

from bot.presentation.captions import (
    AUTOPOST_CHECKING_LINE,
    AUTOPOST_DRY_RUN_LINE,
    AUTOPOST_INTERRUPTED_LINE,
    AUTOPOST_RECORDING_LINE,
    AUTOPOST_UNEXPECTED_LINE,
    autopost_checking_line,
    autopost_failed_line,
    final_line,
    notification_caption,
    says_manual_only,
    with_status,
)
from bot.presentation.keyboards import queue_keyboard
from bot.presentation.texts import AUTOPOST_PROGRESS, AUTOPOST_UNRESOLVABLE
from bot.services.autopost import AutoPostStep, GiveBackReason, ItemMessage
from bot.services.instagram import InstagramError
from bot.services.press import PressOutcome
from bot.telegram import edit_by_id_quietly

_STEP_LINES = {
    AutoPostStep.PUBLISHING: AUTOPOST_PROGRESS,
    AutoPostStep.CHECKING: AUTOPOST_CHECKING_LINE,
    AutoPostStep.RECORDING: AUTOPOST_RECORDING_LINE,
}
_GIVEN_BACK_LINES = {
    GiveBackReason.DRY_RUN: AUTOPOST_DRY_RUN_LINE,
    GiveBackReason.INTERRUPTED: AUTOPOST_INTERRUPTED_LINE,
    GiveBackReason.UNEXPECTED: AUTOPOST_UNEXPECTED_LINE,
    GiveBackReason.UNRESOLVABLE: AUTOPOST_UNRESOLVABLE,
}


class TelegramAutoPostBoard:
    """The `AutoPostBoard` of the team chat; `instagram(chat_id)`: whether 🤖 is offered there."""

    def __init__(self, bot: Bot, instagram: Callable[[int], bool]) -> None:
        self._bot = bot
        self._instagram = instagram

    async def show_progress(
        self, message: ItemMessage, step: AutoPostStep, *, answer: InstagramError | None = None
    ) -> None:
        line = autopost_checking_line(answer) if answer is not None else _STEP_LINES[step]
        await self._edit(message, line, with_buttons=False)

    async def restore_buttons(
        self, message: ItemMessage, reason: GiveBackReason, *, error: InstagramError | None = None
    ) -> None:
        if reason is GiveBackReason.FAILED:
            assert error is not None, "a failure names its error"
            line = autopost_failed_line(error)
        else:
            line = _GIVEN_BACK_LINES[reason]
        await self._edit(message, line, with_buttons=True)

    async def show_outcome(self, message: ItemMessage, outcome: PressOutcome) -> bool:
        return await self._edit(message, final_line(outcome), with_buttons=False)

    async def _edit(self, message: ItemMessage, line: str, *, with_buttons: bool) -> bool:
        """Best effort: the state is on the row; a failed edit is repaired by the next one."""
        if message.message_id is None:
            return True
        body = message.body or notification_caption(
            message.file_name, message.category, message.caption
        )
        buttons = (
            queue_keyboard(
                message.queue_id,
                instagram=self._instagram(message.chat_id),
                manual_only=says_manual_only(body),
            )
            if with_buttons
            else None
        )
        # A text when it is the notice sent for an item whose send Telegram never confirmed.
        return await edit_by_id_quietly(
            self._bot, message.chat_id, message.message_id, with_status(body, line), buttons
        )
