"""The named vocabularies: one spelling each, the constraints and the buttons already in chats."""

from __future__ import annotations

import pytest
from aiogram.methods import EditMessageCaption

from bot.handlers.queue import RECORDED_STATUS
from bot.keyboards import QueueAction, queue_keyboard
from db.models import Base
from db.vocabulary import HistoryStatus, LockReason, QueueStatus, Verdict
from tests.helpers.fake_telegram_session import callback_update, queue_message
from tests.helpers.support import ALICE, TEAM_CHAT, TestApp, fetch_all, seed_media, seed_queue_item


@pytest.mark.parametrize(
    ("verdict", "history_status", "lock_reason"),
    [
        (Verdict.POSTED, HistoryStatus.POSTED, LockReason.RECENT_POST),
        (Verdict.SKIPPED, HistoryStatus.SKIPPED, LockReason.SKIP),
        (Verdict.REJECTED, HistoryStatus.REJECTED, LockReason.REJECTED),
    ],
)
def test_a_verdict_names_its_history_status_and_lock_reason(
    verdict: Verdict, history_status: HistoryStatus, lock_reason: LockReason
) -> None:
    assert (verdict.history_status, verdict.lock_reason) == (history_status, lock_reason)


def test_every_recording_button_has_a_verdict() -> None:
    assert RECORDED_STATUS == {
        QueueAction.POSTED: Verdict.POSTED,
        QueueAction.SKIP: Verdict.SKIPPED,
        QueueAction.CONFIRM_REJECT: Verdict.REJECTED,
    }


@pytest.mark.parametrize(
    ("table", "constraint", "vocabulary"),
    [
        ("posting_queue", "ck_posting_queue_status", QueueStatus),
        ("posting_history", "ck_posting_history_status", HistoryStatus),
        ("media_locks", "ck_media_locks_reason", LockReason),
    ],
)
def test_the_check_constraints_allow_exactly_the_enum(
    table: str, constraint: str, vocabulary: type
) -> None:
    [check] = [c for c in Base.metadata.tables[table].constraints if c.name == constraint]
    allowed = str(check.sqltext).split(" IN ", 1)[1]  # type: ignore[attr-defined]
    assert allowed == "(" + ", ".join(f"'{member.value}'" for member in vocabulary) + ")"


# The callback data of buttons already sent in chats: their spelling must keep working.
WIRE = [
    ("q:posted:{}", "posted", "recent_post"),
    ("q:skip:{}", "skipped", "skip"),
    ("q:confirm_reject:{}", "rejected", "rejected"),
]


@pytest.mark.parametrize(("data", "status", "reason"), WIRE)
async def test_buttons_already_in_chats_still_record(
    app: TestApp, data: str, status: str, reason: str
) -> None:
    [media_id] = await seed_media(app.sessions)
    queue_id = await seed_queue_item(app.sessions, media_id)
    message = queue_message(TEAM_CHAT, 500, "Hi", queue_keyboard(queue_id, instagram=False))

    await app.feed(callback_update(data.format(queue_id.hex), message, ALICE.user))

    [history] = await fetch_all(app.sessions, "SELECT status FROM posting_history")
    [lock] = await fetch_all(app.sessions, "SELECT reason FROM media_locks")
    assert (history.status, lock.reason) == (status, reason)
    assert app.telegram.of(EditMessageCaption)
