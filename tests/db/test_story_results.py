"""Story results, kept: the care loop against a stateful fake Graph API and the real database.

The fake lists Stories for 24 hours by the test's clock, grows each one's
figures with its age, answers error 10 for a small one, and forgets a Story
once it expired, as Instagram does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import respx

from bot.config import Settings
from bot.presentation.keyboards import QueueAction, QueueCallback, queue_keyboard
from tests.helpers.fake_graph import GraphState, install_respx
from tests.helpers.fake_telegram_session import callback_update, queue_message
from tests.helpers.instagram_process import FB_GRAPH, IG_USER, T0, account_process, ig_settings
from tests.helpers.support import (
    ALICE,
    CAPTION,
    TEAM_CHAT,
    Clock,
    fetch_all,
    seed_history,
    seed_media,
    seed_queue_item,
)

METRICS = "reach, views, replies, shares, navigation, profile_visits, follows, total_interactions"


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def graph(clock: Clock) -> Iterator[GraphState]:
    state = GraphState(IG_USER, clock=clock)
    with respx.mock(base_url=FB_GRAPH, assert_all_called=False) as router:
        install_respx(router, state)
        yield state


async def results(sessions: Any) -> dict[str, Any]:
    rows = await fetch_all(
        sessions,
        f"SELECT ig_media_id, history_id, insights_note, last_read_at, {METRICS}"
        " FROM story_results",
    )
    return {row.ig_media_id: row for row in rows}


async def test_insights_are_read_hourly_and_in_the_last_hour_and_kept_after_expiry(
    settings: Settings, database_url: str, graph: GraphState, clock: Clock
) -> None:
    graph.add_story("big", T0, reach_per_hour=100)
    graph.add_story("small", T0)
    graph.small.add("small")
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        care = bot.services.story_results
        clock.advance(minutes=5)
        await care.tick()  # too young: Instagram leaves every metric out (no data yet)
        first = await results(bot.sessions)
        assert first["big"].reach is None and first["big"].last_read_at == clock.now
        assert first["small"].insights_note == "not_enough_viewers"

        clock.advance(minutes=10)
        await care.tick()  # read 10 minutes ago: not due
        assert graph.insights_calls == ["big", "small"]

        seen: list[int] = []
        for _ in range(22):  # hourly, up to 22 h 15 min of age
            clock.advance(hours=1)
            await care.tick()
            seen.append((await results(bot.sessions))["big"].reach)
        assert seen == sorted(seen) and seen[0] == 125 and seen[-1] == 2225
        assert graph.insights_calls.count("big") == 23

        clock.advance(minutes=50)  # 23 h 05: in the last hour, read once more
        await care.tick()
        clock.advance(minutes=30)  # 23 h 35: already read in its last hour
        await care.tick()
        assert graph.insights_calls.count("big") == 24
        last = await results(bot.sessions)
        assert last["big"].reach == int(100 * (23 + 5 / 60))

        clock.advance(hours=1)  # expired: no longer listed, nothing asked, nothing lost
        await care.tick()
        kept = (await results(bot.sessions))["big"]
        assert graph.insights_calls.count("big") == 24
        assert kept.reach == int(100 * (23 + 5 / 60))
        assert (kept.views, kept.replies, kept.shares) == (2 * kept.reach, 46, 23)
        assert (kept.navigation, kept.profile_visits, kept.follows) == (1154, 115, 11)
        assert kept.total_interactions == 46 + 23
        small = (await results(bot.sessions))["small"]
        assert small.reach is None and small.insights_note == "not_enough_viewers"


async def test_an_auto_post_is_tied_by_media_id(
    settings: Settings, database_url: str, graph: GraphState, clock: Clock
) -> None:
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        [media_id] = await seed_media(bot.sessions)
        await seed_history(
            bot.sessions,
            media_id,
            posting_method="instagram_api",
            instagram_media_id="ig-auto",
            acted_at=T0,
        )
        graph.add_story("ig-auto", T0)
        graph.add_story("by-hand", T0 + timedelta(hours=5))
        clock.advance(hours=6)
        await bot.services.story_results.tick()
        [history] = await fetch_all(bot.sessions, "SELECT id FROM posting_history")
        found = await results(bot.sessions)
        assert found["ig-auto"].history_id == history.id
        assert found["by-hand"].history_id is None  # no press near it


async def test_a_posted_press_is_tied_to_the_one_story_that_appeared_and_to_none_of_two(
    settings: Settings, database_url: str, graph: GraphState
) -> None:
    clock = Clock(datetime.now(UTC))  # the press is stamped by the database's clock
    graph.clock = clock
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        first, second = await seed_media(bot.sessions, count=2)
        queue_id = await seed_queue_item(bot.sessions, first)
        press = QueueCallback(action=QueueAction.POSTED, queue_id=queue_id).pack()
        keyboard = queue_keyboard(queue_id, instagram=True)
        await bot.feed(
            callback_update(press, queue_message(TEAM_CHAT, 500, CAPTION, keyboard), ALICE.user)
        )
        [pressed] = await fetch_all(
            bot.sessions,
            "SELECT id, acted_at FROM posting_history WHERE media_item_id = :m",
            m=first,
        )
        graph.add_story("mine", pressed.acted_at + timedelta(minutes=2))
        # Another press three hours earlier, after which two Stories went up.
        earlier = pressed.acted_at - timedelta(hours=3)
        await seed_history(bot.sessions, second, posting_method="telegram_manual", acted_at=earlier)
        graph.add_story("one-of-two", earlier + timedelta(minutes=1))
        graph.add_story("two-of-two", earlier + timedelta(minutes=4))

        clock.now = pressed.acted_at + timedelta(minutes=5)
        await bot.services.story_results.tick()
        found = await results(bot.sessions)
        # The press's window is still open: another Story could yet appear in it.
        assert found["mine"].history_id is None

        clock.now = pressed.acted_at + timedelta(minutes=20)
        await bot.services.story_results.tick()
        await bot.services.story_results.tick()  # again: nothing changes
        found = await results(bot.sessions)
        assert found["mine"].history_id == pressed.id
        assert found["one-of-two"].history_id is None
        assert found["two-of-two"].history_id is None


@pytest.mark.parametrize("tick_after_minutes", [30, 16], ids=["both-closed", "one-still-open"])
async def test_one_story_near_two_presses_is_tied_to_neither(
    settings: Settings, database_url: str, graph: GraphState, clock: Clock, tick_after_minutes: int
) -> None:
    """Which press it belongs to would be a guess, whether or not both windows have closed."""
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        first, second = await seed_media(bot.sessions, count=2)
        for media_id, minutes in ((first, 0), (second, 8)):
            await seed_history(
                bot.sessions,
                media_id,
                posting_method="telegram_manual",
                acted_at=T0 + timedelta(minutes=minutes),
            )
        graph.add_story("whose", T0 + timedelta(minutes=5))
        clock.now = T0 + timedelta(minutes=tick_after_minutes)
        await bot.services.story_results.tick()
        clock.now = T0 + timedelta(minutes=40)
        await bot.services.story_results.tick()
        assert (await results(bot.sessions))["whose"].history_id is None


async def test_a_lost_answer_is_asked_again_and_two_readers_keep_one_row(
    settings: Settings, database_url: str, graph: GraphState, clock: Clock
) -> None:
    graph.add_story("story", T0)
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        clock.advance(hours=2)
        graph.insights_timeouts = 1
        await bot.services.story_results.tick()
        assert (await results(bot.sessions))["story"].last_read_at is None
        clock.advance(minutes=10)
        await bot.services.story_results.tick()  # not read yet, so due: asked again
        assert (await results(bot.sessions))["story"].reach == int(60 * (2 + 10 / 60))

        clock.advance(hours=2)
        async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as other:
            await asyncio.gather(
                bot.services.story_results.tick(), other.services.story_results.tick()
            )
        rows = await fetch_all(bot.sessions, "SELECT reach FROM story_results")
        assert [row.reach for row in rows] == [int(60 * (4 + 10 / 60))]


@pytest.mark.parametrize(
    ("code", "message", "calls_next_round"),
    [
        (190, "Error validating access token: Session has expired", 1),
        (4, "Application request limit reached", 1),
    ],
    ids=["expired-token", "rate-limit"],
)
async def test_a_refusal_ends_the_round_and_the_next_round_asks_again(
    settings: Settings,
    database_url: str,
    graph: GraphState,
    clock: Clock,
    code: int,
    message: str,
    calls_next_round: int,
) -> None:
    graph.add_story("a", T0)
    graph.add_story("b", T0 + timedelta(minutes=1))
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        clock.advance(hours=1)
        graph.insights_error = (400, {"error": {"code": code, "message": message}})
        await bot.services.story_results.tick()
        assert len(graph.insights_calls) == 1  # the round stopped at the first refusal
        assert all(row.last_read_at is None for row in (await results(bot.sessions)).values())
        graph.insights_error = None
        clock.advance(minutes=10)
        await bot.services.story_results.tick()
        assert len(graph.insights_calls) == 3
        assert all(row.reach is not None for row in (await results(bot.sessions)).values())


async def test_without_the_insights_permission_it_says_so_once_and_stays_off(
    settings: Settings,
    database_url: str,
    graph: GraphState,
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    graph.add_story("a", T0)
    graph.insights_error = (
        403,
        {"error": {"code": 10, "message": "(#10) Application does not have permission"}},
    )
    async with account_process(ig_settings(settings, FB_GRAPH), database_url, clock) as bot:
        for _ in range(3):
            clock.advance(hours=1)
            await bot.services.story_results.tick()
        assert graph.insights_calls == ["a"]
        assert bot.services.story_results.switched_off == {TEAM_CHAT}
        logged = capsys.readouterr()
        assert (logged.out + logged.err).count("story_results.no_permission") == 1
