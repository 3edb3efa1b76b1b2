"""/queue's admin buttons: drop one item in flight back to the library, or send it again."""

from __future__ import annotations

import structlog
from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message

from bot.domain import TelegramIdentity, UnavailableError
from bot.filters import IsAdmin
from bot.middlewares import RUNS_TO_COMPLETION
from bot.presentation.keyboards import InFlightAction, InFlightCallback
from bot.presentation.texts import (
    ADMINS_ONLY_INFLIGHT,
    INFLIGHT_BEING_SENT,
    INFLIGHT_CHANGED,
    INFLIGHT_DROPPED,
    INFLIGHT_FAILED,
    INFLIGHT_RESENT,
    INFLIGHT_UNCONFIRMED,
)
from bot.services.chats import ChatDirectory
from bot.services.inflight import InFlightOutcome, InFlightService
from bot.telegram import answer_quietly

logger = structlog.get_logger(__name__)

TOASTS = {
    InFlightOutcome.DROPPED: INFLIGHT_DROPPED,
    InFlightOutcome.RESENT: INFLIGHT_RESENT,
    InFlightOutcome.RESEND_UNCONFIRMED: INFLIGHT_UNCONFIRMED,
    InFlightOutcome.CHANGED: INFLIGHT_CHANGED,
    InFlightOutcome.BEING_SENT: INFLIGHT_BEING_SENT,
}


async def act(
    callback: CallbackQuery,
    button_message: Message,
    callback_data: InFlightCallback,
    inflight: InFlightService,
    admin: TelegramIdentity,
    bot: Bot,
    chat_directory: ChatDirectory,
) -> None:
    """Runs to completion: a resend that started is recorded and answered."""
    # A /queue listed in a group Telegram upgraded since: its rows are the supergroup's.
    chat_id = chat_directory.resolve(button_message.chat.id)
    message_id = callback_data.message_id or None
    logger.info(
        "inflight.pressed",
        action=callback_data.action.value,
        queue_id=str(callback_data.queue_id),
        admin_id=admin.telegram_user_id,
    )
    try:
        if callback_data.action is InFlightAction.DROP:
            outcome = await inflight.drop(callback_data.queue_id, chat_id, message_id)
        else:
            outcome = await inflight.resend(callback_data.queue_id, chat_id, message_id)
    except UnavailableError:
        await answer_quietly(callback, INFLIGHT_FAILED)
        return
    await answer_quietly(callback, TOASTS[outcome])
    if message_id is not None and outcome in (InFlightOutcome.DROPPED, InFlightOutcome.RESENT):
        # The old message's buttons would only answer "no longer in the queue" or
        # act on the item's new message: take them away.
        try:
            await bot.edit_message_reply_markup(
                chat_id=button_message.chat.id, message_id=message_id, reply_markup=None
            )
        except TelegramAPIError as error:
            logger.warning("inflight.buttons_not_removed", error=str(error))


async def refuse(callback: CallbackQuery) -> None:
    logger.warning("inflight.not_admin", user_id=callback.from_user.id)
    await answer_quietly(callback, ADMINS_ONLY_INFLIGHT)


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.filter(InFlightCallback.filter())
    admins_only = Router(name=f"{__name__}.admins_only")
    admins_only.callback_query.filter(IsAdmin())
    admins_only.callback_query.register(act, flags={RUNS_TO_COMPLETION: True})
    refusals = Router(name=f"{__name__}.refusals")
    refusals.callback_query.register(refuse)
    router.include_routers(admins_only, refusals)
    return router
