"""Callback data factories and inline keyboards."""

from __future__ import annotations

import uuid
from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup


class QueueAction(StrEnum):
    POSTED = "posted"
    SKIP = "skip"
    REJECT = "reject"
    CONFIRM_REJECT = "confirm_reject"
    CANCEL_REJECT = "cancel_reject"
    AUTOPOST = "autopost"


class QueueCallback(CallbackData, prefix="q"):
    """`q:<action>:<queue id hex>`, at most 50 bytes."""

    action: QueueAction
    queue_id: uuid.UUID


def _button(text: str, action: QueueAction, queue_id: uuid.UUID) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=QueueCallback(action=action, queue_id=queue_id).pack()
    )


def queue_keyboard(queue_id: uuid.UUID, *, instagram: bool) -> InlineKeyboardMarkup:
    rows = [
        [
            _button("✅ Posted", QueueAction.POSTED, queue_id),
            _button("⏭️ Skip", QueueAction.SKIP, queue_id),
        ],
        [_button("🚫 Reject", QueueAction.REJECT, queue_id)],
    ]
    if instagram:
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
