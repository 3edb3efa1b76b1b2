"""The send budget: the bot keeps inside Telegram's rate limits before Telegram says 429."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import Any

from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import AnswerCallbackQuery, SendMessage

from bot.send_budget import BudgetLimits, SendBudget, SendBudgetMiddleware, chat_of
from tests.helpers.bot_process import BotProcess, command, eventually, posted_button, press
from tests.helpers.fake_bot_api import FakeBotApi, RateLimits
from tests.helpers.support import TEAM_CHAT, TestApp, fetch_all, say, seed_chat, seed_media

FAST = BudgetLimits(bot_per_second=20, bot_burst=2, chat_interval_seconds=0.3, group_per_window=3)


async def _spend_times(budget: SendBudget, chat_ids: list[int]) -> list[float]:
    """Spend once per entry, all at once; the moment each was let through."""
    moments: list[float] = []

    async def one(chat_id: int) -> None:
        await budget.spend(chat_id)
        moments.append(time.monotonic())

    await asyncio.gather(*(one(chat_id) for chat_id in chat_ids))
    return moments


async def test_one_chats_messages_go_a_chat_interval_apart() -> None:
    moments = sorted(await _spend_times(SendBudget(FAST), [TEAM_CHAT] * 3))
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert all(gap >= 0.3 for gap in gaps), gaps


async def test_a_group_gets_at_most_its_window_then_waits() -> None:
    limits = BudgetLimits(chat_interval_seconds=0.0, group_per_window=3, group_window_seconds=1.0)
    started = time.monotonic()
    moments = sorted(await _spend_times(SendBudget(limits), [TEAM_CHAT] * 4))
    assert moments[2] - started < 0.5
    assert moments[3] - moments[0] >= 1.0


async def test_the_whole_bot_is_held_to_its_rate_across_chats() -> None:
    started = time.monotonic()
    await _spend_times(SendBudget(FAST), [-(100 + n) for n in range(12)])
    # A burst of 2, then 20 a second: the other 10 take at least half a second.
    assert time.monotonic() - started >= 0.45


async def test_waiting_shows_the_chats_messages_held_back() -> None:
    budget = SendBudget(FAST)
    await budget.spend(TEAM_CHAT)
    held = asyncio.create_task(budget.spend(TEAM_CHAT))
    await asyncio.sleep(0.1)
    waiting = budget.waiting(TEAM_CHAT)
    assert waiting is not None and waiting[0] == 1 and waiting[1] >= 0.05
    assert budget.waiting(-5) is None
    await held
    assert budget.waiting(TEAM_CHAT) is None


async def test_a_429_holds_that_chat_and_one_without_a_chat_holds_the_bot(
    app: TestApp,
) -> None:
    budget = SendBudget(FAST)
    middleware = SendBudgetMiddleware(budget)

    async def refused(bot: Any, method: Any) -> Any:
        raise TelegramRetryAfter(method=method, message="Too Many Requests", retry_after=1)

    send = SendMessage(chat_id=TEAM_CHAT, text="hi")
    with contextlib.suppress(TelegramRetryAfter):
        await middleware(refused, app.bot, send)
    started = time.monotonic()
    await budget.spend(-77)  # another chat is not held
    assert time.monotonic() - started < 0.2
    await budget.spend(TEAM_CHAT)
    assert time.monotonic() - started >= 0.9

    # A flood wait longer than the budget holds is the caller's (it has the 429).
    budget.pause(-88, 600)
    started = time.monotonic()
    await budget.spend(-88)
    assert time.monotonic() - started < 0.2

    # A toast carries no chat and never waits on the budget.
    assert chat_of(AnswerCallbackQuery(callback_query_id="1")) is None


async def test_status_shows_a_message_waiting_for_the_budget(app: TestApp) -> None:
    budget = app.services.send_budget
    await budget.spend(TEAM_CHAT)
    held = asyncio.create_task(budget.spend(TEAM_CHAT))
    await asyncio.sleep(0.05)
    reply = await say(app, "/status")
    await held
    assert "Waiting for Telegram's send budget: 1 message(s)" in reply


# -- the real process against a Bot API that enforces Telegram's limits ------------------------

CHATS = [-1_005_000 - n for n in range(60)]


async def test_sixty_chats_due_at_once_stay_inside_telegrams_limits(
    api: FakeBotApi,
    bot_env: dict[str, str],
    session_factory: Any,
) -> None:
    api.limits = RateLimits()
    for chat_id in CHATS:
        await seed_chat(
            session_factory, chat_id, posting_hours_start=0, posting_hours_end=0, posts_per_day=50
        )
        # Uploaded before: each send is by file id.
        await seed_media(session_factory, chat_id, count=2, telegram_file_id=f"photo{chat_id}")
    process = BotProcess({**bot_env, "TELEGRAM_CHAT_ID": ",".join(map(str, CHATS))})
    await process.start()
    try:
        # Presses and commands meanwhile, as soon as the first items arrive.
        first = await api.wait_for("sendPhoto", count=1)
        started = first[0].at
        pressed: dict[str, float] = {}
        for index in range(5):
            await api.wait_for("sendPhoto", count=index + 1)
            message = api.of("sendPhoto")[index].result
            pressed[f"cb{len(api.updates)}"] = time.monotonic()
            press(api, message, posted_button(message))
            api.push_update(message=command(CHATS[-1 - index], "/status"))
            api.push_update(message=command(CHATS[-1 - index], "/queue"))
            await asyncio.sleep(0.1)

        async def all_sent() -> bool:
            return {int(call.params["chat_id"]) for call in api.of("sendPhoto")} == set(CHATS)

        await eventually(all_sent, timeout=60)
        await api.wait_for("answerCallbackQuery", count=5)
        await api.wait_for("sendMessage", count=10)
        await api.wait_for("editMessageCaption", count=5)
        assert await process.stop() == 0
    finally:
        await process.kill_and_show_log()

    assert api.too_many == []
    sends = api.of("sendPhoto")
    assert sorted(int(call.params["chat_id"]) for call in sends) == sorted(CHATS)
    # Each chat's item is in flight, or pressed Posted (then in the history only).
    rows = await fetch_all(
        session_factory,
        "SELECT chat_id FROM posting_queue UNION ALL SELECT chat_id FROM posting_history",
    )
    assert sorted(row.chat_id for row in rows) == sorted(CHATS)
    answers = {call.params["callback_query_id"]: call.at for call in api.of("answerCallbackQuery")}
    for callback_id, pushed in pressed.items():
        assert answers[callback_id] - pushed <= 1.0, (callback_id, answers[callback_id] - pushed)
    # Every message of the burst shares the bot's 25 a second (after a burst of 3);
    # the last chat waits no longer than that implies, with a margin for a busy machine.
    messages = len(sends) + len(api.of("sendMessage")) + len(api.of("editMessageCaption"))
    implied = messages / BudgetLimits().bot_per_second
    last = max(call.at for call in sends)
    assert last - started <= implied + 3.0, (last - started, implied)
    assert "Traceback" not in process.log


async def test_quiet_chats_are_forgotten_past_the_most_remembered(monkeypatch: Any) -> None:
    monkeypatch.setattr("bot.send_budget.MOST_LANES", 3)
    now = [0.0]
    budget = SendBudget(FAST, monotonic=lambda: now[0])
    for chat_id in (-1, -2, -3):
        await budget.spend(chat_id)
    now[0] = 61.0
    await budget.spend(-4)
    assert set(budget._lanes) == {-4}
