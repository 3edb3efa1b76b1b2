"""Claiming many due chats at once: a few statements for the batch, the same rules per chat."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text

from tests.helpers.scheduling import NOW, make_scheduler
from tests.helpers.support import Clock, TestApp, execute, fetch_all, seed_chat, seed_media

CHATS = [-1_007_000 - n for n in range(30)]


async def test_thirty_chats_are_claimed_with_a_handful_of_statements(
    app: TestApp, engine: Any
) -> None:
    for chat_id in CHATS:
        await seed_chat(
            app.sessions, chat_id, posting_hours_start=9, posting_hours_end=21, posts_per_day=12
        )
        await seed_media(app.sessions, chat_id, count=2, prefix=f"c{chat_id}")
    paused, empty, taken = CHATS[0], CHATS[1], CHATS[2]
    await execute(
        app.sessions,
        "UPDATE chat_settings SET is_paused = true WHERE telegram_chat_id = :c",
        c=paused,
    )
    await execute(
        app.sessions, "UPDATE media_items SET is_active = false WHERE chat_id = :c", c=empty
    )
    # Both of `taken`'s items are already in flight: nothing eligible is left.
    await execute(
        app.sessions,
        "INSERT INTO posting_queue (media_item_id, chat_id, status)"
        " SELECT id, chat_id, 'sent' FROM media_items WHERE chat_id = :c",
        c=taken,
    )
    scheduler = make_scheduler(app, Clock(NOW))
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "after_cursor_execute", count)
    try:
        claimed = await scheduler.claim_due(CHATS)
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", count)

    assert len(statements) <= 5, statements
    assert sorted(item.chat_id for item in claimed) == sorted(set(CHATS) - {paused, empty, taken})
    rows = await fetch_all(
        app.sessions,
        "SELECT q.id, q.chat_id, q.scheduled_for, c.last_post_sent_at FROM posting_queue q"
        " JOIN chat_settings c ON c.telegram_chat_id = q.chat_id WHERE q.status = 'sending'",
    )
    # Each row has its own id, its chat's 10:00 slot, and the slot is marked filled.
    assert {row.id for row in rows} == {item.queue_id for item in claimed}
    slot = NOW.replace(minute=0)
    assert {(row.scheduled_for, row.last_post_sent_at) for row in rows} == {(slot, slot)}
    untouched = await fetch_all(
        app.sessions,
        "SELECT last_post_sent_at FROM chat_settings WHERE telegram_chat_id IN (:a, :b, :c)",
        a=paused,
        b=empty,
        c=taken,
    )
    assert [row.last_post_sent_at for row in untouched] == [None, None, None]
    # The slot is filled: claiming again takes nothing.
    assert await scheduler.claim_due(CHATS) == []
    async with app.sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM posting_queue"))).scalar() == 29
