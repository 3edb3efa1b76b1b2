"""The admin router: /pause, /resume, /settings, the settings and ↩️ Put back buttons, behind
one IsAdmin.

Every settings button SETS a value (see `bot.presentation.keyboards.SettingsCallback`) and every
change is logged once. A non-admin reaches the refusals below and is told so.
"""

from __future__ import annotations

import re
from html import escape

import structlog
from aiogram import F, Router
from aiogram.filters import Command, CommandObject, or_f
from aiogram.types import CallbackQuery, Message

from bot.domain import TelegramIdentity
from bot.filters import IsAdmin
from bot.middlewares import RUNS_TO_COMPLETION
from bot.presentation.keyboards import (
    SETTINGS_LABEL,
    PutBackCallback,
    SettingsCallback,
    settings_keyboard,
)
from bot.presentation.texts import (
    ADMINS_ONLY_COMMAND,
    ADMINS_ONLY_PUT_BACK,
    ADMINS_ONLY_SETTINGS,
    ALREADY_PAUSED,
    ALREADY_RUNNING,
    PAUSED,
    PUT_BACK_ALREADY,
    PUT_BACK_DONE,
    RESUMED,
    SETTING_ALREADY_SET,
    SETTING_SAVED,
    SETTINGS_USAGE,
    TOPIC_HERE_OUTSIDE,
    TOPIC_USAGE,
    framing_set,
    lifetime_set,
    render_settings,
    runway_threshold_set,
    setting_rejected,
    timezone_set,
    topic_set,
)
from bot.services.chats import ChatDirectory
from bot.services.team import SettingRejectedError, TeamService
from bot.telegram import answer_quietly, edit_quietly

logger = structlog.get_logger(__name__)

ADMIN_COMMANDS = ("pause", "resume", "settings")
# `/settings WORD VALUE`: the word and the setting field it changes.


async def pause(message: Message, team: TeamService, admin: TelegramIdentity) -> None:
    changed = await team.set_paused(message.chat.id, admin, True)
    await message.answer(PAUSED if changed else ALREADY_PAUSED)


async def resume(message: Message, team: TeamService, admin: TelegramIdentity) -> None:
    changed = await team.set_paused(message.chat.id, admin, False)
    await message.answer(RESUMED if changed else ALREADY_RUNNING)


async def settings_command(
    message: Message, command: CommandObject, team: TeamService, admin: TelegramIdentity
) -> None:
    arguments = (command.args or "").split()
    if not arguments:
        chat = await team.chat(message.chat.id)
        await message.answer(render_settings(chat), reply_markup=settings_keyboard(chat))
        return
    name = arguments[0].lower()
    if len(arguments) != 2 or name not in {
        "tz",
        "timezone",
        "topic",
        "lifetime",
        "runway",
        "framing",
    }:
        await message.answer(SETTINGS_USAGE)
        return
    try:
        if name == "topic":
            value: object = topic_argument(message, arguments[1])
            field = "topic"
        elif name == "lifetime":
            if not arguments[1].isascii() or not arguments[1].isdigit():
                await message.answer(SETTINGS_USAGE)
                return
            value, field = int(arguments[1]), "sentttl"
        elif name == "runway":
            # Out of range or not a number: the setting's own check refuses it.
            value = int(arguments[1]) if re.fullmatch(r"[0-9]{1,4}", arguments[1]) else -1
            field = "runway"
        elif name == "framing":
            value, field = arguments[1], "framing"
        else:
            value, field = arguments[1], "tz"
        chat, _ = await team.change_setting(message.chat.id, admin, field, value)
    except TopicArgumentError as refused:
        await message.answer(escape(refused.text))
        return
    except SettingRejectedError as rejected:
        await message.answer(escape(setting_rejected(rejected)))
        return
    if name == "topic":
        await message.answer(topic_set(chat.message_thread_id))
    elif name == "lifetime":
        await message.answer(lifetime_set(chat.sent_ttl_days))
    elif name == "runway":
        await message.answer(runway_threshold_set(chat.runway_warning_days))
    elif name == "framing":
        await message.answer(framing_set(chat.photo_framing))
    else:
        await message.answer(timezone_set(chat.timezone))


class TopicArgumentError(Exception):
    """`/settings topic` got a word it cannot use; `text` tells the admin what to type."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def topic_argument(message: Message, argument: str) -> int | None:
    """`here` (typed inside a topic), `off` (General) or a topic id."""
    word = argument.lower()
    if word == "here":
        if not message.is_topic_message or message.message_thread_id is None:
            raise TopicArgumentError(TOPIC_HERE_OUTSIDE)
        return message.message_thread_id
    if word in {"off", "general"}:
        return None
    if not word.isascii() or not word.isdigit() or int(word) <= 0:
        raise TopicArgumentError(TOPIC_USAGE)
    return int(word)


async def change(
    callback: CallbackQuery,
    button_message: Message,
    callback_data: SettingsCallback,
    team: TeamService,
    admin: TelegramIdentity,
) -> None:
    try:
        chat, changed = await team.change_setting(
            button_message.chat.id, admin, callback_data.field, callback_data.value
        )
    except SettingRejectedError as rejected:
        await answer_quietly(callback, setting_rejected(rejected))
        # A stale message: show the current values again.
        current = await team.chat(button_message.chat.id)
        await edit_quietly(button_message, render_settings(current), settings_keyboard(current))
        return
    # Unchanged: a double tap, or a stale message showing what is already set.
    await answer_quietly(callback, SETTING_SAVED if changed else SETTING_ALREADY_SET)
    await edit_quietly(button_message, render_settings(chat), settings_keyboard(chat))


async def put_back(
    callback: CallbackQuery,
    button_message: Message,
    callback_data: PutBackCallback,
    team: TeamService,
    admin: TelegramIdentity,
    chat_directory: ChatDirectory,
) -> None:
    """A set-aside item becomes selectable again; a double tap answers "already back"."""
    # A notice in the history of a group Telegram upgraded: its item is the supergroup's.
    chat_id = chat_directory.resolve(button_message.chat.id)
    changed = await team.put_back(chat_id, admin, callback_data.media_id)
    await answer_quietly(callback, PUT_BACK_DONE if changed else PUT_BACK_ALREADY)


async def label(callback: CallbackQuery) -> None:
    """A button that only shows a value: an empty answer, whoever pressed it."""
    await answer_quietly(callback)


async def refuse_command(message: Message) -> None:
    assert message.from_user is not None  # the chat gate skips anonymous senders
    logger.warning("command.not_admin", user_id=message.from_user.id)
    await message.answer(ADMINS_ONLY_COMMAND)


async def refuse_put_back(callback: CallbackQuery) -> None:
    logger.warning("put_back.not_admin", user_id=callback.from_user.id)
    await answer_quietly(callback, ADMINS_ONLY_PUT_BACK)


async def refuse_button(callback: CallbackQuery) -> None:
    logger.warning("settings.not_admin", user_id=callback.from_user.id)
    await answer_quietly(callback, ADMINS_ONLY_SETTINGS)


def create_router() -> Router:
    """Admin commands and buttons, then IsAdmin, then the refusal for everyone else.

    The router's own filters pick the admin updates before IsAdmin runs, so an
    ordinary chat message never costs an admin lookup.
    """
    router = Router(name=__name__)
    router.message.filter(Command(*ADMIN_COMMANDS))
    router.callback_query.filter(or_f(SettingsCallback.filter(), PutBackCallback.filter()))
    router.callback_query.register(label, SettingsCallback.filter(F.field == SETTINGS_LABEL))

    admins_only = Router(name=f"{__name__}.admins_only")
    admins_only.message.filter(IsAdmin())
    admins_only.callback_query.filter(IsAdmin())
    # A change and its reply outlive shutdown: the admin always hears what happened.
    to_completion = {RUNS_TO_COMPLETION: True}
    admins_only.message.register(pause, Command("pause"), flags=to_completion)
    admins_only.message.register(resume, Command("resume"), flags=to_completion)
    admins_only.message.register(settings_command, Command("settings"), flags=to_completion)
    admins_only.callback_query.register(change, SettingsCallback.filter(), flags=to_completion)
    admins_only.callback_query.register(put_back, PutBackCallback.filter(), flags=to_completion)

    refusals = Router(name=f"{__name__}.refusals")
    refusals.message.register(refuse_command)
    refusals.callback_query.register(refuse_put_back, PutBackCallback.filter())
    refusals.callback_query.register(refuse_button)

    router.include_routers(admins_only, refusals)
    return router
