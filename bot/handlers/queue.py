"""The queue buttons: ✅ Posted, ⏭️ Skip, 🚫 Reject (with confirmation)."""

from __future__ import annotations

import asyncio

import structlog
from aiogram import F, Router
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot.domain import Press, UnavailableError
from bot.middlewares import ACTS_ON_QUEUE, RUNS_TO_COMPLETION, VANISHED_OK
from bot.presentation.captions import (
    already_line,
    body_of,
    final_line,
    says_manual_only,
    with_status,
)
from bot.presentation.keyboards import (
    RECORDED_STATUS,
    QueueAction,
    QueueCallback,
    confirm_reject_keyboard,
    queue_keyboard,
)
from bot.presentation.texts import (
    AUTOPOST_BUSY,
    AUTOPOST_CHECKING,
    AUTOPOST_NOT_CONFIGURED,
    AUTOPOST_PROGRESS,
    AUTOPOST_SENDING,
    AUTOPOST_UNAVAILABLE,
    PRESS_CRASHED,
    PRESS_FAILED,
    RECORDING,
    REJECT_CANCELLED,
    REJECT_PROMPT,
    UNKNOWN_ITEM,
    WRONG_CHAT_ITEM,
    autopost_manual_only,
)
from bot.services.accounts.clients import InstagramAccounts
from bot.services.autopost import (
    AutoPostRefusal,
    AutoPostResult,
    AutoPostService,
)
from bot.services.chats import ChatDirectory
from bot.services.media_prep import ManualOnly
from bot.services.press import OutcomeKind, PressOutcome, PressService
from bot.services.tasks import TaskTracker
from bot.telegram import answer_quietly, edit_quietly, identity_of

logger = structlog.get_logger(__name__)

# A press normally commits in milliseconds; the toast can then tell the result.
# A slow one gets "Recording…" so the spinner never hangs.
ACK_AFTER_SECONDS = 0.8


async def show_outcome(
    callback: CallbackQuery,
    message: Message | InaccessibleMessage,
    outcome: PressOutcome,
    *,
    answered: bool,
) -> None:
    """Toast (unless already answered) and caption for a settled press.

    A message Telegram no longer shows (deleted, too old) gets the toast only.
    """
    if outcome.kind is OutcomeKind.RECORDED:
        toast = final_line(outcome)
    elif outcome.kind is OutcomeKind.ALREADY:
        toast = already_line(outcome.status or "", outcome.acted_by_name)
    elif outcome.kind is OutcomeKind.BUSY:
        toast = AUTOPOST_BUSY
    elif outcome.kind is OutcomeKind.WRONG_CHAT:
        logger.warning("press.wrong_chat", chat_id=message.chat.id)
        toast = WRONG_CHAT_ITEM
    else:
        logger.warning("press.unknown_item", chat_id=message.chat.id)
        toast = UNKNOWN_ITEM
    if not answered:
        await answer_quietly(callback, toast)
    if isinstance(message, Message) and outcome.kind in (
        OutcomeKind.RECORDED,
        OutcomeKind.ALREADY,
    ):
        # Also repairs a message whose buttons survived someone else's press.
        await edit_quietly(message, with_status(message.html_text, final_line(outcome)), None)


async def record_press(
    callback: CallbackQuery,
    button_message: Message | InaccessibleMessage,
    callback_data: QueueCallback,
    press: PressService,
    instagram_accounts: InstagramAccounts,
    chat_directory: ChatDirectory,
) -> None:
    """Runs to completion (RUNS_TO_COMPLETION): shutdown cancelling it still commits and edits."""
    # A message the group got before Telegram upgraded it: its item is the supergroup's now.
    chat_id = chat_directory.resolve(button_message.chat.id)
    pressed = Press(
        queue_id=callback_data.queue_id,
        chat_id=chat_id,
        status=RECORDED_STATUS[callback_data.action],
        presser=identity_of(callback.from_user),
        telegram_message_id=button_message.message_id,
    )
    recording = asyncio.ensure_future(press.record(pressed))
    done, _ = await asyncio.wait({recording}, timeout=ACK_AFTER_SECONDS)
    answered = not done
    if answered:
        await answer_quietly(callback, RECORDING)
    try:
        outcome = await recording
    except UnavailableError:
        if not answered:
            await answer_quietly(callback, PRESS_FAILED)
        if not isinstance(button_message, Message):
            return
        keyboard = queue_keyboard(
            callback_data.queue_id,
            instagram=instagram_accounts.autopost_available(chat_id),
            manual_only=says_manual_only(button_message.html_text),
        )
        await edit_quietly(
            button_message, with_status(button_message.html_text, PRESS_FAILED), keyboard
        )
        return
    except Exception:
        if not answered:
            await answer_quietly(callback, PRESS_CRASHED)
        raise
    await show_outcome(callback, button_message, outcome, answered=answered)


async def ask_to_confirm_reject(
    callback: CallbackQuery, button_message: Message, callback_data: QueueCallback
) -> None:
    await answer_quietly(callback)
    await edit_quietly(
        button_message,
        with_status(button_message.html_text, REJECT_PROMPT),
        confirm_reject_keyboard(callback_data.queue_id),
    )


async def cancel_reject(
    callback: CallbackQuery,
    button_message: Message,
    callback_data: QueueCallback,
    instagram_accounts: InstagramAccounts,
) -> None:
    await answer_quietly(callback, REJECT_CANCELLED)
    body = body_of(button_message.html_text)
    await edit_quietly(
        button_message,
        body,
        queue_keyboard(
            callback_data.queue_id,
            instagram=instagram_accounts.autopost_available(button_message.chat.id),
            manual_only=says_manual_only(body),
        ),
    )


async def auto_post(
    callback: CallbackQuery,
    button_message: Message,
    callback_data: QueueCallback,
    autopost: AutoPostService | None,
    tasks: TaskTracker,
    instagram_accounts: InstagramAccounts,
) -> None:
    """Claim, then publish; the service writes every caption from here on (also at shutdown).

    Runs to completion (RUNS_TO_COMPLETION), like a press.
    """
    if autopost is None:
        await answer_quietly(callback, AUTOPOST_NOT_CONFIGURED)
        return
    # No account for this chat, or its token expired: say so and what to do.
    refusal = instagram_accounts.autopost_refusal(button_message.chat.id)
    if refusal is not None:
        await answer_quietly(callback, AUTOPOST_UNAVAILABLE[refusal], alert=True)
        return
    try:
        claim = await autopost.claim(
            callback_data.queue_id,
            button_message.chat.id,
            identity_of(callback.from_user),
            body=body_of(button_message.html_text),
            message_id=button_message.message_id,
        )
    except UnavailableError:
        await answer_quietly(callback, PRESS_FAILED)
        return
    if isinstance(claim, PressOutcome):
        await show_outcome(callback, button_message, claim, answered=False)
        return
    if isinstance(claim, ManualOnly):
        # A 🤖 from before index found the file unfit: say why, and take the button away.
        await answer_quietly(callback, autopost_manual_only(claim.reason), alert=True)
        keyboard = queue_keyboard(callback_data.queue_id, instagram=True, manual_only=True)
        await edit_quietly(button_message, button_message.html_text, keyboard)
        return
    if claim is AutoPostRefusal.SENDING:
        await answer_quietly(callback, AUTOPOST_SENDING)
        return
    if claim is AutoPostRefusal.CHECKING:
        # Nothing is created: the press only asks Instagram about the earlier publish.
        # The caption is the resolver's to write (an edit here could land after its result).
        await answer_quietly(callback, AUTOPOST_CHECKING)
        tasks.spawn(autopost.resolve_soon(callback_data.queue_id, immediately=True))
        return
    await answer_quietly(callback, AUTOPOST_PROGRESS)
    result = await autopost.publish(claim)
    if result.result is AutoPostResult.CHECKING:
        tasks.spawn(autopost.resolve_soon(callback_data.queue_id))


def create_router() -> Router:
    router = Router(name=__name__)
    # Every queue button is for ALLOWED_USER_IDS (and admins): the chat gate reads the flag.
    # A press and an Auto Post, once past the gate, survive shutdown cancelling them.
    on_queue = {ACTS_ON_QUEUE: True}
    to_completion = {**on_queue, RUNS_TO_COMPLETION: True}
    # A press on a deleted or too-old message still carries the chat and the queue id.
    router.callback_query.register(
        record_press,
        QueueCallback.filter(F.action.in_(set(RECORDED_STATUS))),
        flags={**to_completion, VANISHED_OK: True},
    )
    router.callback_query.register(
        ask_to_confirm_reject, QueueCallback.filter(F.action == QueueAction.REJECT), flags=on_queue
    )
    router.callback_query.register(
        cancel_reject,
        QueueCallback.filter(F.action == QueueAction.CANCEL_REJECT),
        flags=on_queue,
    )
    router.callback_query.register(
        auto_post, QueueCallback.filter(F.action == QueueAction.AUTOPOST), flags=to_completion
    )
    return router
