"""Team commands: /start /help /status /queue /next /history /stats.

The admin commands are bot.handlers.admin's. The design: docs/architecture.md §8.
"""

from __future__ import annotations

import re
from datetime import datetime

import structlog
from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BotCommand, BufferedInputFile, Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.middlewares import ACTS_ON_QUEUE, PRIVATE_OK, RUNS_TO_COMPLETION
from bot.send_budget import SendBudget
from bot.services.chart import activity_chart
from bot.services.clock import Clock
from bot.services.instagram_accounts import InstagramAccounts
from bot.services.scheduler import Scheduler
from bot.services.team import TeamService
from bot.texts import (
    CHART_CAPTION,
    COMMANDS,
    HELP,
    INTRO,
    NO_HISTORY,
    NO_PRESSES,
    NOTHING_IN_FLIGHT,
    budget_wait_line,
    history_text,
    history_usage,
    nothing_sent_text,
    queue_text,
    stats_text,
    status_text,
)

logger = structlog.get_logger(__name__)

HISTORY_DEFAULT = 10
HISTORY_MAX = 50


def bot_commands() -> list[BotCommand]:
    return [BotCommand(command=name, description=text) for name, text in COMMANDS]


async def start(message: Message, team: TeamService) -> None:
    if message.chat.type != "private":
        await team.register_chat(message.chat.id, message.chat.title)
    await message.answer(INTRO)


async def help_(message: Message) -> None:
    await message.answer(HELP)


async def status(
    message: Message,
    team: TeamService,
    instagram_accounts: InstagramAccounts,
    send_budget: SendBudget,
    clock: Clock,
) -> None:
    now = clock()
    view = await team.status(message.chat.id, now)
    instagram = await instagram_accounts.status_lines(message.chat.id)
    text = status_text(view, now, instagram)
    # Read before this reply queues behind the same budget.
    waiting = send_budget.waiting(message.chat.id)
    if waiting is not None:
        text += "\n" + budget_wait_line(*waiting)
    await message.answer(text)


async def queue(message: Message, team: TeamService, clock: Clock) -> None:
    now = clock()
    rows = await team.in_flight(message.chat.id)
    if not rows:
        await message.answer(NOTHING_IN_FLIGHT)
        return
    await message.answer(queue_text(rows, now))


async def history(
    message: Message, command: CommandObject, team: TeamService, clock: Clock
) -> None:
    limit = HISTORY_DEFAULT
    if command.args:
        argument = command.args.strip()
        # Only ASCII digits: str.isdigit() also accepts "²", which int() refuses.
        if not re.fullmatch(r"[0-9]{1,3}", argument) or not 1 <= int(argument) <= HISTORY_MAX:
            await message.answer(history_usage(HISTORY_MAX))
            return
        limit = int(argument)
    rows = await team.history(message.chat.id, limit)
    if not rows:
        await message.answer(NO_HISTORY)
        return
    await message.answer(history_text(rows, clock()))


async def stats(
    message: Message,
    team: TeamService,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> None:
    now = clock()
    people = await team.stats(message.chat.id, now)
    if not people:
        await message.answer(NO_PRESSES)
        return
    await message.answer(stats_text(people))
    await send_chart(message, sessions, now)


async def send_chart(
    message: Message, sessions: async_sessionmaker[AsyncSession], now: datetime
) -> None:
    """The picture after the text; a chart that fails to render leaves the text alone."""
    try:
        png = await activity_chart(sessions, message.chat.id, now)
    except Exception:
        logger.exception("stats.chart_failed")
        return
    if png is not None:
        await message.answer_photo(
            BufferedInputFile(png, filename="stats.png"),
            caption=CHART_CAPTION,
        )


async def next_item(message: Message, scheduler: Scheduler) -> None:
    result = await scheduler.send_now(message.chat.id)
    if not result.sent:
        await message.answer(nothing_sent_text(result))


async def register_commands(bot: Bot) -> None:
    await bot.set_my_commands(bot_commands())


def create_router() -> Router:
    router = Router(name=__name__)
    # The chat gate (bot.middlewares) reads the flags.
    router.message.register(
        start, Command("start"), flags={PRIVATE_OK: True, RUNS_TO_COMPLETION: True}
    )
    router.message.register(help_, Command("help"), flags={PRIVATE_OK: True})
    router.message.register(status, Command("status"))
    router.message.register(queue, Command("queue"))
    # /next sends an item: once begun, the send and its bookkeeping finish.
    router.message.register(
        next_item, Command("next"), flags={ACTS_ON_QUEUE: True, RUNS_TO_COMPLETION: True}
    )
    router.message.register(history, Command("history"))
    router.message.register(stats, Command("stats"))
    return router
