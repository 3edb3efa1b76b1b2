"""/stats that answers questions, the runway in /status and its warning, and /export.

Through the real dispatcher and database; Telegram is the recording session.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError
from aiogram.methods import SendDocument, SendMessage
from aiogram.types import BufferedInputFile
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_app
from bot.config import Settings
from bot.database import Database
from bot.presentation.texts import runway_line
from bot.services import runway as runway_module
from bot.services.runway import RunwayWatch, runway_of
from db.engine import create_session_factory
from db.repositories.activity import ActivityRepository
from db.repositories.migrations import ChatMigrationRepository
from tests.helpers.fake_telegram_session import RecordingSession, command_update, group_upgraded
from tests.helpers.pgproxy import PgProxy, commit_after
from tests.helpers.support import (
    ADA,
    DECIDED_FROM,
    TEAM_CHAT,
    Clock,
    TestApp,
    execute,
    fetch_all,
    say,
    seed_chat,
    seed_decision,
    seed_media,
    seed_person,
)

NOW = DECIDED_FROM
# The conditional UPDATE that records the runway warning before it is sent.
MARK_STATEMENT = b"UPDATE chat_settings SET runway_warned_at"
SUPERGROUP = -1004001000  # the id Telegram gives the team chat on an upgrade


async def test_stats_answers_questions_and_keeps_two_alexes_apart(app: TestApp) -> None:
    sessions = app.sessions
    alex_one = await seed_person(sessions, 101, "Alex", "alex_one")
    alex_two = await seed_person(sessions, 102, "Alex", "alex_two")
    cakes = await seed_media(sessions, count=4, prefix="cake", category="cakes")
    dogs = await seed_media(sessions, count=2, prefix="dog", category="dogs")
    [fresh] = await seed_media(sessions, prefix="fresh", category="dogs")
    await seed_decision(sessions, cakes[0], "posted", alex_one, "Alex", hours_ago=2, reach=400)
    await seed_decision(sessions, cakes[1], "posted", alex_one, "Alex", hours_ago=26, reach=200)
    await seed_decision(
        sessions, cakes[2], "rejected", alex_two, "Alex", hours_ago=3, waited_minutes=90
    )
    for days_ago in (1, 2, 3):
        await seed_decision(
            sessions, cakes[3], "skipped", alex_two, "Alex", hours_ago=24 * days_ago + 1
        )
    await seed_decision(sessions, dogs[0], "posted", alex_two, "Alex", hours_ago=5, reach=90)
    await seed_decision(sessions, dogs[1], "posted", alex_one, "Alex", hours_ago=24 * 60)
    # Alex one renames: the counts stay theirs, under the new name.
    await execute(sessions, "UPDATE users SET first_name = 'Alexandra' WHERE id = :u", u=alex_one)

    reply = await say(app, "/stats")

    assert reply.startswith("📊 <b>Last 30 days</b>")
    assert "Alexandra: 7d 2/0/0 · 30d 2/0/0 · all 3/0/0 · 2 decisions, median 30 min" in reply
    assert "Alex: 7d 1/3/1 · 30d 1/3/1 · all 1/3/1 · 5 decisions, median 30 min" in reply
    assert "cakes: 6, 50% skipped, 17% rejected, reach 300 (2 Stories)" in reply
    assert "dogs: 1, 0% skipped, 0% rejected, reach 90 (1 Stories)" in reply
    assert "Reach by hour" in reply
    hour = (NOW - timedelta(hours=2)).hour
    assert f"{hour:02d}:00 300" in reply  # 400 two hours ago, 200 a day before
    assert "Never sent: 1 — <code>fresh0.jpg</code>" in reply
    assert "Skipped 3+ times: 1 — <code>cake3.jpg</code> (3×)" in reply
    del fresh

    # Two people of one name stay two, told apart by their usernames.
    await execute(sessions, "UPDATE users SET first_name = 'Alex' WHERE id = :u", u=alex_one)
    reply = await say(app, "/stats 90")
    assert "Alex (@alex_one): 7d 2/0/0 · 30d 2/0/0 · all 3/0/0 · 3 decisions" in reply
    assert "Alex (@alex_two): 7d 1/3/1" in reply
    # The picture's people are keyed the same way.
    async with sessions() as session:
        counts = await ActivityRepository(session).daily_counts(
            TEAM_CHAT, NOW - timedelta(days=28), "UTC"
        )
    assert {count.person for count in counts} == {"Alex (@alex_one)", "Alex (@alex_two)"}
    assert "Usage: /stats [days]" in await say(app, "/stats lots")
    assert "Usage: /stats [days]" in await say(app, "/stats 0")


async def test_stats_of_a_big_team_is_cut_below_telegrams_limit(app: TestApp) -> None:
    media = await seed_media(app.sessions, count=45)
    for number, media_id in enumerate(media):
        who = await seed_person(
            app.sessions, 1000 + number, "Maximiliana " + "W" * 60, f"m{number}"
        )
        await seed_decision(app.sessions, media_id, "posted", who, "M", hours_ago=1)
    reply = await say(app, "/stats")
    assert len(reply.encode("utf-16-le")) // 2 <= 4096
    assert reply.endswith("more not shown")


def test_the_runway_counts_locks_as_they_expire_and_names_the_category_that_runs_out_first() -> (
    None
):
    # 123 dogs free now, 6 cakes free now and 12 more in 90 days; 3 a day, reposts after 365.
    releases = [("dogs", 0, 117), ("cakes", 0, 6), ("cakes", 90, 12)]
    runway = runway_of(releases, posts_per_day=3, repost_days=365)
    assert runway.days == pytest.approx(41.0)
    assert runway.shortest is not None and runway.shortest.category == "cakes"
    assert runway_line(runway) == "📆 Runway: 41 days left at 3 a day; cakes runs out in 15 days"
    # Posts come back after the repost lock: 40 items at 1 a day never run out.
    assert runway_of([(None, 0, 40)], posts_per_day=1, repost_days=30).days is None
    # Skip locks that run out add to the runway on the day they do.
    later = runway_of([(None, 0, 6), (None, 2, 30)], posts_per_day=3, repost_days=365)
    assert later.days == pytest.approx(12.0)


async def test_status_shows_the_runway(app: TestApp) -> None:
    await seed_chat(app.sessions, posts_per_day=2)
    media = await seed_media(app.sessions, count=20, category="dogs")
    cakes = await seed_media(app.sessions, count=4, prefix="cake", category="cakes")
    for media_id in media[:6]:  # rejected for good: never counted
        await execute(
            app.sessions,
            "INSERT INTO media_locks (media_item_id, reason) VALUES (:m, 'rejected')",
            m=media_id,
        )
    for media_id in cakes[:3]:  # skipped: back in 40 days
        await execute(
            app.sessions,
            "INSERT INTO media_locks (media_item_id, reason, locked_until)"
            " VALUES (:m, 'skip', now() + interval '40 days')",
            m=media_id,
        )
    reply = await say(app, "/status")
    assert "📆 Runway: 7 days left at 2 a day; cakes runs out in 2 days" in reply


async def test_settings_sets_the_runway_threshold(app: TestApp) -> None:
    assert "fewer than 10 days" in await say(app, "/settings runway 10", who=ADA.user)
    [row] = await fetch_all(app.sessions, "SELECT runway_warning_days FROM chat_settings")
    assert row.runway_warning_days == 10
    assert "from 0 (off) to 365" in await say(app, "/settings runway 999", who=ADA.user)
    assert "from 0 (off) to 365" in await say(app, "/settings runway soon", who=ADA.user)
    assert "turned off" in await say(app, "/settings runway 0", who=ADA.user)
    assert "Runway warning: off" in await say(app, "/settings", who=ADA.user)


def warnings(telegram: RecordingSession) -> list[str]:
    return [call.text for call in telegram.of(SendMessage) if "running low" in call.text]


def watch_of(app: TestApp) -> RunwayWatch:
    return app.services.runway


async def test_the_runway_warning_is_sent_once_per_drop(app: TestApp) -> None:
    await seed_chat(app.sessions, posts_per_day=3, runway_warning_days=7)
    media = await seed_media(app.sessions, count=12)
    watch = watch_of(app)
    assert await watch.check(TEAM_CHAT) is True
    assert await watch.check(TEAM_CHAT) is False
    [warning] = warnings(app.telegram)
    assert "4 days left at 3 a day" in warning and "7-day warning" in warning

    # It recovers (more media), then drops again: told again, once.
    more = await seed_media(app.sessions, count=30, prefix="more")
    await watch.check(TEAM_CHAT)
    [row] = await fetch_all(app.sessions, "SELECT runway_warned_at FROM chat_settings")
    assert row.runway_warned_at is None
    await execute(
        app.sessions, "UPDATE media_items SET is_active = false WHERE id = ANY(:m)", m=more
    )
    assert await watch.check(TEAM_CHAT) is True
    assert await watch.check(TEAM_CHAT) is False
    assert len(warnings(app.telegram)) == 2
    del media


async def test_a_lost_answer_is_not_sent_again_and_a_refusal_is(app: TestApp) -> None:
    await seed_chat(app.sessions, posts_per_day=3)
    await seed_media(app.sessions, count=3)
    watch = watch_of(app)
    # The answer is lost after the request left: it may have arrived, so it stays marked.
    app.telegram.fail_next(
        SendMessage, TelegramNetworkError(method=SendMessage(chat_id=0, text=""), message="x")
    )
    assert await watch.check(TEAM_CHAT) is False
    assert await watch.check(TEAM_CHAT) is False
    assert len(app.telegram.of(SendMessage)) == 1  # the one attempt, never repeated

    await execute(app.sessions, "UPDATE chat_settings SET runway_warned_at = NULL")
    # Telegram refused it: nothing arrived, so the mark is undone and the next check sends.
    app.telegram.fail_next(
        SendMessage, TelegramBadRequest(method=SendMessage(chat_id=0, text=""), message="no")
    )
    assert await watch.check(TEAM_CHAT) is False
    [row] = await fetch_all(app.sessions, "SELECT runway_warned_at FROM chat_settings")
    assert row.runway_warned_at is None
    assert await watch.check(TEAM_CHAT) is True


async def test_two_processes_warn_once(
    app: TestApp, settings: Settings, engine: AsyncEngine
) -> None:
    await seed_chat(app.sessions, posts_per_day=3)
    await seed_media(app.sessions, count=3)
    other_telegram = RecordingSession()
    other = build_app(
        settings,
        Database(engine=engine, sessions=create_session_factory(engine)),
        session=other_telegram,
    )
    try:
        sent = await asyncio.gather(
            watch_of(app).check(TEAM_CHAT), other.services.runway.check(TEAM_CHAT)
        )
    finally:
        await other.services.close()
    assert sorted(sent) == [False, True]
    assert len(warnings(app.telegram)) + len(warnings(other_telegram)) == 1


def _watch_through(sessions: Any, app: TestApp) -> RunwayWatch:
    """The app's runway watch, its database reached through `sessions` (the proxy)."""
    return RunwayWatch(
        sessions=sessions,
        bot=app.bot,
        clock=Clock(NOW),
        chat_directory=app.services.chat_directory,
        notices=app.services.runway.notices,
    )


async def test_a_lost_commit_reply_of_our_mark_still_sends_the_warning_once(
    app: TestApp,
    proxy: PgProxy,
    proxied: Any,
) -> None:
    await seed_chat(app.sessions, posts_per_day=3)
    await seed_media(app.sessions, count=3)
    proxy.cut_after_reply_to(commit_after(MARK_STATEMENT))
    watch = _watch_through(proxied, app)
    assert await watch.check(TEAM_CHAT) is True
    assert proxy.cuts == 1
    assert len(warnings(app.telegram)) == 1
    [row] = await fetch_all(app.sessions, "SELECT runway_warned_at FROM chat_settings")
    assert row.runway_warned_at == NOW


async def test_a_lost_commit_reply_when_another_process_warned_at_the_same_instant_sends_nothing(
    app: TestApp,
    proxy: PgProxy,
    proxied: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our mark changed nothing; the other's stamp equals our clock's, yet it is not ours."""
    await seed_chat(app.sessions, posts_per_day=3)
    await seed_media(app.sessions, count=3)
    read = runway_module.read_runway

    async def and_another_process_warns(session: Any, chat: Any, now: datetime) -> Any:
        runway = await read(session, chat, now)
        await execute(app.sessions, "UPDATE chat_settings SET runway_warned_at = :t", t=now)
        return runway

    monkeypatch.setattr(runway_module, "read_runway", and_another_process_warns)
    proxy.cut_after_reply_to(commit_after(MARK_STATEMENT))
    watch = _watch_through(proxied, app)
    assert await watch.check(TEAM_CHAT) is False
    assert proxy.cuts == 1
    assert warnings(app.telegram) == []


async def test_a_chat_upgraded_to_a_supergroup_is_warned_there(app: TestApp) -> None:
    """Moved by another process (this one never heard of it): the watch finds the new id."""
    await seed_chat(app.sessions, posts_per_day=3)
    await seed_media(app.sessions, count=3)
    async with app.sessions() as session, session.begin():
        await ChatMigrationRepository(session).move(TEAM_CHAT, SUPERGROUP)
    await watch_of(app).tick()
    [warning] = [call for call in app.telegram.of(SendMessage) if "running low" in call.text]
    assert warning.chat_id == SUPERGROUP
    [row] = await fetch_all(app.sessions, "SELECT runway_warned_at FROM chat_settings")
    assert row.runway_warned_at is not None
    await watch_of(app).tick()
    assert len(warnings(app.telegram)) == 1


async def test_a_warning_that_meets_a_supergroup_upgrade_follows_it_there(app: TestApp) -> None:
    """Nothing arrived in the old group: the warning goes to the supergroup, marked there."""
    await seed_chat(app.sessions, posts_per_day=3)
    await seed_media(app.sessions, count=3)
    app.telegram.fail_next(
        SendMessage, group_upgraded(SendMessage(chat_id=TEAM_CHAT, text="warning"), SUPERGROUP)
    )
    assert await watch_of(app).check(TEAM_CHAT) is True
    sent = [call.chat_id for call in app.telegram.of(SendMessage) if "running low" in call.text]
    assert sent[-1] == SUPERGROUP
    [row] = await fetch_all(
        app.sessions, "SELECT telegram_chat_id, runway_warned_at FROM chat_settings"
    )
    assert row.telegram_chat_id == SUPERGROUP and row.runway_warned_at is not None
    assert await watch_of(app).check(TEAM_CHAT) is False


async def test_export_sends_the_history_with_story_results_as_csv(app: TestApp) -> None:
    assert "No history to export" in await say(app, "/export")
    alex = await seed_person(app.sessions, 101, "Alex", "alex")
    [media_id] = await seed_media(app.sessions, category="cakes")
    await seed_decision(
        app.sessions, media_id, "posted", alex, "Alex, “the baker”", hours_ago=3, reach=321
    )
    sneaky = await seed_person(app.sessions, 102, "=HYPERLINK(1)", "sneaky")
    [other_id] = await seed_media(app.sessions, prefix="other", category="cakes")
    await seed_decision(app.sessions, other_id, "skipped", sneaky, "=HYPERLINK(1)", hours_ago=2)
    await app.feed(command_update("/export", TEAM_CHAT, ADA.user))
    [document] = app.telegram.of(SendDocument)
    assert isinstance(document.document, BufferedInputFile)
    assert document.document.filename.endswith(".csv")
    text = document.document.data.decode("utf-8-sig")
    rows: list[dict[str, Any]] = list(csv.DictReader(io.StringIO(text)))
    row = next(row for row in rows if row["status"] == "posted")
    # A name a spreadsheet would run as a formula is kept as text.
    assert [r["acted_by"] for r in rows if r["status"] == "skipped"] == ["'=HYPERLINK(1)"]
    assert row["acted_by"] == "Alex, “the baker”"
    assert row["category"] == "cakes" and row["reach"] == "321"
    assert row["telegram_user_id"] == "101"
