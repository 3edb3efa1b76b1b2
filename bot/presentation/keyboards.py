"""Every inline keyboard and its callback data: the queue buttons and the /settings buttons."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import TYPE_CHECKING

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from db.vocabulary import Framing, Verdict

if TYPE_CHECKING:
    from bot.services.team import ChatView


class QueueAction(StrEnum):
    POSTED = "posted"
    SKIP = "skip"
    REJECT = "reject"
    CONFIRM_REJECT = "confirm_reject"
    CANCEL_REJECT = "cancel_reject"
    AUTOPOST = "autopost"


# The queue buttons that record a press, and what each decides.
RECORDED_STATUS: dict[QueueAction, Verdict] = {
    QueueAction.POSTED: Verdict.POSTED,
    QueueAction.SKIP: Verdict.SKIPPED,
    QueueAction.CONFIRM_REJECT: Verdict.REJECTED,
}


class QueueCallback(CallbackData, prefix="q"):
    """`q:<action>:<queue id hex>`, at most 50 bytes."""

    action: QueueAction
    queue_id: uuid.UUID


def _button(text: str, action: QueueAction, queue_id: uuid.UUID) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=QueueCallback(action=action, queue_id=queue_id).pack()
    )


def queue_keyboard(
    queue_id: uuid.UUID, *, instagram: bool, manual_only: bool = False
) -> InlineKeyboardMarkup:
    """✅ ⏭️ 🚫, and 🤖 where the chat has Instagram and the item is not manual-only."""
    rows = [
        [
            _button("✅ Posted", QueueAction.POSTED, queue_id),
            _button("⏭️ Skip", QueueAction.SKIP, queue_id),
        ],
        [_button("🚫 Reject", QueueAction.REJECT, queue_id)],
    ]
    if instagram and not manual_only:
        rows.append([_button("🤖 Auto Post", QueueAction.AUTOPOST, queue_id)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def confirm_reject_keyboard(queue_id: uuid.UUID) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button("✅ Yes, reject", QueueAction.CONFIRM_REJECT, queue_id),
                _button("❌ Cancel", QueueAction.CANCEL_REJECT, queue_id),
            ]
        ]
    )


class PutBackCallback(CallbackData, prefix="back"):
    """`back:<media id hex>`: SETS a set-aside item back to selectable (never a toggle)."""

    media_id: uuid.UUID


# Buttons under /queue's list of set-aside items; the rest are put back from their notice.
PUT_BACK_BUTTONS_MAX = 20


def _put_back_button(text: str, media_id: uuid.UUID) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=PutBackCallback(media_id=media_id).pack())


def put_back_keyboard(media_id: uuid.UUID) -> InlineKeyboardMarkup:
    """The set-aside notice's one button."""
    return InlineKeyboardMarkup(inline_keyboard=[[_put_back_button("↩️ Put back", media_id)]])


def put_back_list_keyboard(items: list[tuple[uuid.UUID, str]]) -> InlineKeyboardMarkup:
    """One ↩️ button per set-aside item (id, file name), for /queue's list."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_put_back_button(f"↩️ {name[:40]}", media_id)]
            for media_id, name in items[:PUT_BACK_BUTTONS_MAX]
        ]
    )


class InFlightAction(StrEnum):
    DROP = "drop"
    RESEND = "resend"


class InFlightCallback(CallbackData, prefix="fl"):
    """`fl:<action>:<queue id hex>:<message id>`: acts only while the item is still at that
    message (0: it has none), so a double tap or a stale /queue acts on nothing."""

    action: InFlightAction
    queue_id: uuid.UUID
    message_id: int = 0


# /queue offers buttons for this many items at most (the rest: /queue again later).
INFLIGHT_BUTTONS_MAX = 10


def _inflight_button(
    text: str, action: InFlightAction, queue_id: uuid.UUID, message_id: int | None
) -> InlineKeyboardButton:
    data = InFlightCallback(action=action, queue_id=queue_id, message_id=message_id or 0)
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def inflight_keyboard(
    items: list[tuple[uuid.UUID, int | None, str]],
) -> InlineKeyboardMarkup | None:
    """/queue's buttons: for each (queue id, message id, file name) a resend and a drop."""
    rows = []
    for queue_id, message_id, file_name in items[:INFLIGHT_BUTTONS_MAX]:
        short = file_name if len(file_name) <= 24 else f"{file_name[:11]}…{file_name[-12:]}"
        rows.append(
            [
                _inflight_button(f"🔁 {short}", InFlightAction.RESEND, queue_id, message_id),
                _inflight_button("↩️ Drop", InFlightAction.DROP, queue_id, message_id),
            ]
        )
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


class SettingsCallback(CallbackData, prefix="set"):
    """`set:<field>:<value>`: the button SETS field to value (never a toggle or a step).

    field is pause or dry (value 1 = on, 0 = off), ppd, start or end (the number),
    framing (the index in `db.vocabulary.Framing`), or noop (a label). A double tap,
    a stale message or a retried commit then leave the setting as the button says,
    changed once.
    """

    field: str
    value: int = 0


SETTINGS_LABEL = "noop"  # the field of a button that only shows a value


def _setting_button(text: str, field: str, value: int = 0) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=SettingsCallback(field=field, value=value).pack()
    )


def _hour_row(field: str, label: str, hour: int) -> list[InlineKeyboardButton]:
    # Hours wrap around midnight.
    return [
        _setting_button("➖", field, (hour - 1) % 24),
        _setting_button(f"{label} {hour:02d}:00", SETTINGS_LABEL),
        _setting_button("➕", field, (hour + 1) % 24),
    ]


def settings_keyboard(chat: ChatView) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _setting_button("▶️ Resume", "pause", 0)
                if chat.is_paused
                else _setting_button("⏸ Pause", "pause", 1),
                _setting_button(
                    f"🧪 Dry run: {'on' if chat.dry_run else 'off'}", "dry", int(not chat.dry_run)
                ),
            ],
            [
                _setting_button("➖", "ppd", chat.posts_per_day - 1),
                _setting_button(f"{chat.posts_per_day} a day", SETTINGS_LABEL),
                _setting_button("➕", "ppd", chat.posts_per_day + 1),
            ],
            _hour_row("start", "from", chat.posting_hours_start),
            _hour_row("end", "until", chat.posting_hours_end),
            [_framing_button(Framing(chat.photo_framing))],
        ]
    )


def _framing_button(current: Framing) -> InlineKeyboardButton:
    """Shows the framing; SETS the next one (a double tap sets the same one again)."""
    choices = list(Framing)
    following = (choices.index(current) + 1) % len(choices)
    return _setting_button(f"🖼 Framing: {current.value}", "framing", following)
