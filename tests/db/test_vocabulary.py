"""The named vocabularies: one spelling each, the constraints and the buttons already in chats."""

from __future__ import annotations

import pytest
from aiogram.methods import EditMessageCaption
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.presentation.keyboards import RECORDED_STATUS, QueueAction, queue_keyboard
from bot.services.team import SettingRejectedError, TeamService
from db.models import Base
from db.vocabulary import SETTING_RANGES, HistoryStatus, LockReason, QueueStatus, Verdict
from tests.helpers.fake_telegram_session import callback_update, queue_message
from tests.helpers.support import (
    ADA,
    ALICE,
    TEAM_CHAT,
    TestApp,
    fetch_all,
    seed_media,
    seed_queue_item,
)


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


async def test_the_migrated_settings_checks_are_the_declared_ranges(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = 'chat_settings'::regclass AND contype = 'c'"
            )
        )
        checks = {name: definition for name, definition in rows}
    for column, allowed in SETTING_RANGES.items():
        definition = checks[f"ck_chat_settings_{column}"]
        assert f"{column} >= {allowed.lowest}" in definition
        if allowed.highest is not None:
            assert f"{column} <= {allowed.highest}" in definition


@pytest.mark.parametrize(
    ("field", "column"),
    [
        ("ppd", "posts_per_day"),
        ("runway", "runway_warning_days"),
        ("sentttl", "sent_ttl_days"),
        ("end", "posting_hours_end"),
    ],
)
async def test_settings_accept_exactly_the_declared_range(
    session_factory: async_sessionmaker[AsyncSession], field: str, column: str
) -> None:
    team = TeamService(session_factory)
    allowed = SETTING_RANGES[column]
    assert allowed.highest is not None
    for value in (allowed.lowest, allowed.highest):
        chat, _ = await team.change_setting(TEAM_CHAT, ADA.identity, field, value)
        assert getattr(chat, column) == value
    for value in (allowed.lowest - 1, allowed.highest + 1):
        with pytest.raises(SettingRejectedError):
            await team.change_setting(TEAM_CHAT, ADA.identity, field, value)
    assert getattr(await team.chat(TEAM_CHAT), column) == allowed.highest


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
