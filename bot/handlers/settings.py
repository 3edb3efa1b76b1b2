"""/settings: one message whose buttons each set a value; admins only, every change logged once."""

from __future__ import annotations

from html import escape

import structlog
from aiogram import Router
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.config import Settings
from bot.middlewares import ADMIN_ONLY
from bot.services.admins import AdminDirectory
from bot.services.team import SettingRejectedError, TeamService
from bot.telegram import answer_quietly, edit_quietly, identity_of
from db.models import ChatSettings

logger = structlog.get_logger(__name__)


class SettingsCallback(CallbackData, prefix="set"):
    """`set:<field>:<value>`: the button SETS field to value (never a toggle or a step).

    field is pause or dry (value 1 = on, 0 = off), ppd, start or end (the number),
    or noop (a label). A double tap, a stale message or a retried commit then
    leave the setting as the button says, changed once.
    """

    field: str
    value: int = 0


def render_settings(chat: ChatSettings) -> str:
    state = "⏸ paused" if chat.is_paused else "▶️ running"
    return (
        "⚙️ <b>Settings</b>\n"
        f"Status: {state}\n"
        f"Dry run: {'on' if chat.dry_run else 'off'}\n"
        f"Posts per day: {chat.posts_per_day}\n"
        f"Window: {chat.posting_hours_start:02d}:00–{chat.posting_hours_end:02d}:00 "
        f"({escape(chat.timezone)})\n\n"
        "Timezone: <code>/settings tz Europe/Berlin</code>"
    )


def _button(text: str, field: str, value: int = 0) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=SettingsCallback(field=field, value=value).pack()
    )


def _hour_row(field: str, label: str, hour: int) -> list[InlineKeyboardButton]:
    # Hours wrap around midnight.
    return [
        _button("➖", field, (hour - 1) % 24),
        _button(f"{label} {hour:02d}:00", "noop"),
        _button("➕", field, (hour + 1) % 24),
    ]


def settings_keyboard(chat: ChatSettings) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button("▶️ Resume", "pause", 0)
                if chat.is_paused
                else _button("⏸ Pause", "pause", 1),
                _button(
                    f"🧪 Dry run: {'on' if chat.dry_run else 'off'}", "dry", int(not chat.dry_run)
                ),
            ],
            [
                _button("➖", "ppd", chat.posts_per_day - 1),
                _button(f"{chat.posts_per_day} a day", "noop"),
                _button("➕", "ppd", chat.posts_per_day + 1),
            ],
            _hour_row("start", "from", chat.posting_hours_start),
            _hour_row("end", "until", chat.posting_hours_end),
        ]
    )


async def change(
    callback: CallbackQuery,
    callback_data: SettingsCallback,
    team: TeamService,
    admins: AdminDirectory,
    settings: Settings,
) -> None:
    message = callback.message
    assert isinstance(message, Message)  # the chat gate let only these through
    if callback_data.field == "noop":
        await answer_quietly(callback)
        return
    if not await admins.is_admin(message.chat.id, callback.from_user.id):
        logger.warning("settings.not_admin", user_id=callback.from_user.id)
        await answer_quietly(callback, "⛔ Only admins can change settings.")
        return
    try:
        chat, changed = await team.change_setting(
            message.chat.id,
            identity_of(callback.from_user),
            callback_data.field,
            callback_data.value,
        )
    except SettingRejectedError as rejected:
        await answer_quietly(callback, str(rejected))
        # A stale message: show the current values again.
        current = await team.chat(message.chat.id)
        await edit_quietly(message, render_settings(current), settings_keyboard(current))
        return
    # Unchanged: a double tap, or a stale message showing what is already set.
    await answer_quietly(callback, "Saved" if changed else "Already set")
    await edit_quietly(message, render_settings(chat), settings_keyboard(chat))


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(change, SettingsCallback.filter(), flags={ADMIN_ONLY: True})
    return router
