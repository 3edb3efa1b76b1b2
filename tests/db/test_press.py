"""A press through the real dispatcher, service and database (docs/architecture.md §3)."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageCaption

from bot.presentation.captions import notification_caption
from bot.presentation.keyboards import QueueAction
from db.vocabulary import Verdict
from tests.helpers.fake_telegram_session import callback_update, queue_message
from tests.helpers.support import (
    ALICE,
    BOB,
    BOB_IN_TAGS,
    OTHER_CHAT,
    TEAM_CHAT,
    TestApp,
    fetch_all,
    history_rows,
    press_update,
    seed_chat,
    seed_queued,
)

CAPTION = notification_caption("item0.jpg", "cat", "Hello")


# The press tests' queue message: captioned "Hello", without the Auto Post button.
_press_update = partial(press_update, caption="Hello\n\n📄 item0.jpg · #cat", instagram=False)
HISTORY = "h.status, h.acted_by_name, u.telegram_user_id, h.posting_method"


def _toasts(app: TestApp) -> list[str | None]:
    return [call.text for call in app.telegram.of(AnswerCallbackQuery)]


async def test_posted_records_every_effect_once(app: TestApp) -> None:
    _media_id, queue_id = await seed_queued(app.sessions)

    await app.feed(_press_update(queue_id, QueueAction.POSTED))

    assert [(r[0], r[1], r[2]) for r in await history_rows(app.sessions, HISTORY)] == [
        ("posted", "Alice", 7)
    ]
    [media] = await fetch_all(app.sessions, "SELECT times_posted, last_posted_at FROM media_items")
    assert media.times_posted == 1
    assert media.last_posted_at is not None
    [lock] = await fetch_all(
        app.sessions,
        "SELECT reason, round(extract(epoch FROM locked_until - created_at) / 86400) AS days"
        " FROM media_locks",
    )
    assert (lock.reason, lock.days) == ("recent_post", 30)
    assert await fetch_all(app.sessions, "SELECT 1 FROM posting_queue") == []
    [presser] = await fetch_all(app.sessions, "SELECT total_posts, first_name FROM users")
    assert (presser.total_posts, presser.first_name) == (1, "Alice")
    [logged] = await fetch_all(app.sessions, "SELECT kind, name, context FROM user_interactions")
    assert (logged.kind, logged.name, logged.context["recorded"]) == (
        "callback",
        "press:posted",
        True,
    )

    [edit] = app.telegram.of(EditMessageCaption)
    assert edit.caption.endswith("✅ Posted by Alice")
    assert edit.caption.startswith("Hello")
    assert edit.reply_markup is None
    assert _toasts(app) == ["✅ Posted by Alice"]


async def test_skip_sets_a_skip_lock_and_no_counters(app: TestApp) -> None:
    _, queue_id = await seed_queued(app.sessions)
    await app.feed(_press_update(queue_id, QueueAction.SKIP))

    assert [r[0] for r in await history_rows(app.sessions, HISTORY)] == ["skipped"]
    [lock] = await fetch_all(
        app.sessions,
        "SELECT reason, round(extract(epoch FROM locked_until - created_at) / 86400) AS days"
        " FROM media_locks",
    )
    assert (lock.reason, lock.days) == ("skip", 45)
    [media] = await fetch_all(app.sessions, "SELECT times_posted FROM media_items")
    assert media.times_posted == 0
    [presser] = await fetch_all(app.sessions, "SELECT total_posts FROM users")
    assert presser.total_posts == 0
    assert app.telegram.of(EditMessageCaption)[-1].caption.endswith("⏭️ Skipped by Alice")


async def test_reject_asks_then_cancel_restores_then_confirm_locks_for_good(app: TestApp) -> None:
    media_id, queue_id = await seed_queued(app.sessions)
    async with app.sessions() as session, session.begin():
        from sqlalchemy import text

        await session.execute(
            text(
                "INSERT INTO media_locks (media_item_id, reason, locked_until)"
                " VALUES (:m, 'skip', now() + interval '3 days')"
            ),
            {"m": media_id},
        )

    await app.feed(_press_update(queue_id, QueueAction.REJECT))
    prompt = app.telegram.of(EditMessageCaption)[-1]
    assert "Reject this item for good?" in prompt.caption
    buttons = [b.text for row in prompt.reply_markup.inline_keyboard for b in row]
    assert buttons == ["✅ Yes, reject", "❌ Cancel"]
    assert await history_rows(app.sessions, HISTORY) == []

    await app.feed(_press_update(queue_id, QueueAction.CANCEL_REJECT, caption=prompt.caption))
    restored = app.telegram.of(EditMessageCaption)[-1]
    assert restored.caption == "Hello\n\n📄 item0.jpg · #cat"
    assert [b.text for row in restored.reply_markup.inline_keyboard for b in row] == [
        "✅ Posted",
        "⏭️ Skip",
        "🚫 Reject",
    ]
    assert await history_rows(app.sessions, HISTORY) == []

    await app.feed(_press_update(queue_id, QueueAction.CONFIRM_REJECT, caption=prompt.caption))
    assert [r[0] for r in await history_rows(app.sessions, HISTORY)] == ["rejected"]
    locks = await fetch_all(app.sessions, "SELECT reason, locked_until FROM media_locks")
    assert [(lock.reason, lock.locked_until) for lock in locks] == [("rejected", None)]
    final = app.telegram.of(EditMessageCaption)[-1]
    assert final.caption == "Hello\n\n📄 item0.jpg · #cat\n\n🚫 Rejected by Alice"
    assert final.reply_markup is None


async def test_double_tap_records_once_and_tells_the_truth(app: TestApp) -> None:
    _, queue_id = await seed_queued(app.sessions)
    await app.feed(_press_update(queue_id, QueueAction.POSTED))
    await app.feed(_press_update(queue_id, QueueAction.POSTED))

    assert len(await history_rows(app.sessions, HISTORY)) == 1
    assert _toasts(app) == ["✅ Posted by Alice", "✅ Already posted by Alice"]
    [presser] = await fetch_all(app.sessions, "SELECT total_posts FROM users")
    assert presser.total_posts == 1


async def test_posted_and_skip_at_the_same_moment(app: TestApp) -> None:
    _, queue_id = await seed_queued(app.sessions)
    await asyncio.gather(
        app.feed(_press_update(queue_id, QueueAction.POSTED, ALICE)),
        app.feed(_press_update(queue_id, QueueAction.SKIP, BOB_IN_TAGS)),
    )
    [(status, name, _telegram_id, _)] = await history_rows(app.sessions, HISTORY)
    toasts = sorted(t or "" for t in _toasts(app))
    if status == "posted":
        assert (name, toasts) == ("Alice", ["✅ Already posted by Alice", "✅ Posted by Alice"])
    else:
        assert (name, toasts) == (
            "Bob <b>",
            ["⏭️ Already skipped by Bob &lt;b&gt;", "⏭️ Skipped by Bob &lt;b&gt;"],
        )
    # Both messages end up showing the winner, names escaped for HTML.
    assert all("<b>" not in edit.caption for edit in app.telegram.of(EditMessageCaption))


async def test_item_of_another_chat_changes_nothing(app: TestApp) -> None:
    await seed_chat(app.sessions, OTHER_CHAT)
    _, queue_id = await seed_queued(app.sessions, OTHER_CHAT)
    await app.feed(_press_update(queue_id, QueueAction.POSTED))

    assert await history_rows(app.sessions, HISTORY) == []
    assert len(await fetch_all(app.sessions, "SELECT 1 FROM posting_queue")) == 1
    assert _toasts(app) == ["⚠️ That item isn't in this chat's queue."]
    assert app.telegram.of(EditMessageCaption) == []


async def test_a_finished_item_of_another_chat_leaves_this_message_alone(app: TestApp) -> None:
    """A forged or replayed button for another chat's settled item: no caption, no names."""
    from bot.domain import Press, TelegramIdentity

    await seed_chat(app.sessions, OTHER_CHAT)
    _, queue_id = await seed_queued(app.sessions, OTHER_CHAT)
    other_chat_member = TelegramIdentity(telegram_user_id=99, first_name="Mallory")
    await app.services.press.record(
        Press(
            queue_id=queue_id,
            chat_id=OTHER_CHAT,
            status=Verdict.POSTED,
            presser=other_chat_member,
        )
    )
    await app.feed(_press_update(queue_id, QueueAction.SKIP))

    assert [tuple(row)[:2] for row in await history_rows(app.sessions, HISTORY)] == [
        ("posted", "Mallory")
    ]
    assert _toasts(app) == ["⚠️ That item isn't in this chat's queue."]
    assert app.telegram.of(EditMessageCaption) == []


async def test_unknown_item(app: TestApp) -> None:
    await app.feed(_press_update(uuid.uuid4(), QueueAction.SKIP))
    assert _toasts(app) == ["⚠️ That item is no longer in the queue."]
    assert app.telegram.of(EditMessageCaption) == []


@pytest.mark.parametrize("data", ["q:posted:not-a-uuid", "q:explode:" + "0" * 32, "garbage", "q"])
async def test_malformed_payload_gets_a_toast(app: TestApp, data: str) -> None:
    _, _queue_id = await seed_queued(app.sessions)
    message = queue_message(TEAM_CHAT, 500, CAPTION)
    await app.feed(callback_update(data, message, ALICE.user))
    assert _toasts(app) == ["⚠️ This button is no longer valid."]
    assert await history_rows(app.sessions, HISTORY) == []


async def test_press_in_a_chat_the_bot_does_not_serve(app: TestApp) -> None:
    _, queue_id = await seed_queued(app.sessions)
    await app.feed(_press_update(queue_id, QueueAction.POSTED, chat_id=OTHER_CHAT))
    assert _toasts(app) == ["⚠️ This bot doesn't serve this chat."]
    assert await history_rows(app.sessions, HISTORY) == []


async def test_user_not_allowed(app: TestApp) -> None:
    app.dispatcher["settings"] = app.settings.model_copy(
        update={"allowed_user_ids": frozenset({99})}
    )
    _, queue_id = await seed_queued(app.sessions)
    await app.feed(_press_update(queue_id, QueueAction.POSTED))
    assert _toasts(app) == ["⛔ You're not allowed to act on the queue."]
    assert await history_rows(app.sessions, HISTORY) == []


async def test_message_not_modified_is_not_an_error(app: TestApp) -> None:
    from tests.helpers.fake_telegram_session import not_modified

    _, queue_id = await seed_queued(app.sessions)
    app.telegram.fail_next(EditMessageCaption, not_modified())
    await app.feed(_press_update(queue_id, QueueAction.POSTED))
    assert len(await history_rows(app.sessions, HISTORY)) == 1


async def test_a_failed_answer_does_not_stop_the_caption_edit(app: TestApp) -> None:
    from aiogram.exceptions import TelegramNetworkError

    _, queue_id = await seed_queued(app.sessions)
    for _ in range(4):  # more than the request middleware retries
        app.telegram.fail_next(
            AnswerCallbackQuery,
            TelegramNetworkError(method=AnswerCallbackQuery(callback_query_id="x"), message="down"),
        )
    await app.feed(_press_update(queue_id, QueueAction.POSTED))
    assert len(await history_rows(app.sessions, HISTORY)) == 1
    assert app.telegram.of(EditMessageCaption)[-1].caption.endswith("✅ Posted by Alice")


async def test_two_processes_pressing_at_once_record_one_row(
    app: TestApp, database_url: str
) -> None:
    """Two engines (two pools, as two bot processes would have) race on one item."""
    from bot.domain import Press
    from bot.services.press import OutcomeKind, PressService
    from db.engine import EngineOptions, create_engine, create_session_factory

    _, queue_id = await seed_queued(app.sessions)
    other = create_engine(EngineOptions(url=database_url, pool_size=1, max_overflow=0))
    try:
        services = [PressService(app.sessions), PressService(create_session_factory(other))]
        people = [ALICE.identity, BOB.identity]
        outcomes = await asyncio.gather(
            *(
                service.record(
                    Press(queue_id=queue_id, chat_id=TEAM_CHAT, status=status, presser=who)
                )
                for service, who, status in zip(
                    services, people, [Verdict.POSTED, Verdict.SKIPPED], strict=True
                )
            )
        )
    finally:
        await other.dispose()
    assert sorted(o.kind for o in outcomes) == [OutcomeKind.ALREADY, OutcomeKind.RECORDED]
    winner = next(o for o in outcomes if o.kind is OutcomeKind.RECORDED)
    loser = next(o for o in outcomes if o.kind is OutcomeKind.ALREADY)
    assert (loser.status, loser.acted_by_name) == (winner.status, winner.acted_by_name)
    assert len(await history_rows(app.sessions, HISTORY)) == 1
