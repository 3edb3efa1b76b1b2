"""Team commands: /start /help /status /queue /next /history /stats /export.

The admin commands are bot.handlers.admin's. The design: docs/architecture.md §8.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

import structlog
from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BotCommand, BufferedInputFile, Message

from bot.middlewares import ACTS_ON_QUEUE, PRIVATE_OK, RUNS_TO_COMPLETION
from bot.presentation.keyboards import inflight_keyboard, put_back_list_keyboard
from bot.presentation.texts import (
    CHART_CAPTION,
    COMMANDS,
    EXPORT_CAPTION,
    HELP,
    INTRO,
    NO_EXPORT,
    NO_HISTORY,
    NO_PRESSES,
    NOTHING_IN_FLIGHT,
    budget_wait_line,
    history_text,
    history_usage,
    instagram_status_lines,
    nothing_sent_text,
    queue_text,
    sent_to_topic,
    set_aside_text,
    stats_text,
    stats_usage,
    status_text,
)
from bot.send_budget import SendBudget
from bot.services.accounts.clients import InstagramAccounts
from bot.services.chart import HeatMap, heat_map_of
from bot.services.clock import Clock
from bot.services.scheduler import Scheduler
from bot.services.team import TeamService

logger = structlog.get_logger(__name__)

HISTORY_DEFAULT = 10
HISTORY_MAX = 50
STATS_DEFAULT_DAYS = 30
STATS_MAX_DAYS = 3650


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
    instagram = instagram_status_lines(await instagram_accounts.status(message.chat.id))
    text = status_text(view, now, instagram)
    # Read before this reply queues behind the same budget.
    waiting = send_budget.waiting(message.chat.id)
    if waiting is not None:
        text += "\n" + budget_wait_line(*waiting)
    await message.answer(text)


async def queue(message: Message, team: TeamService, clock: Clock) -> None:
    now = clock()
    rows = await team.in_flight(message.chat.id)
    if rows:
        # An admin's drop and resend buttons for the items that arrived (IsAdmin guards them).
        sent = [
            (row.id, row.telegram_message_id, media.file_name) for row, media in rows if row.arrived
        ]
        await message.answer(queue_text(rows, now), reply_markup=inflight_keyboard(sent))
    else:
        await message.answer(NOTHING_IN_FLIGHT)
    set_aside = await team.set_aside_items(message.chat.id)
    if set_aside:
        buttons = put_back_list_keyboard([(item.id, item.file_name) for item in set_aside])
        await message.answer(set_aside_text(set_aside), reply_markup=buttons)


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


def _number_argument(command: CommandObject, most: int) -> int | None:
    """The command's one argument as 1..most; None when it is anything else."""
    argument = (command.args or "").strip()
    # Only ASCII digits: str.isdigit() also accepts "²", which int() refuses.
    if not re.fullmatch(r"[0-9]{1,5}", argument) or not 1 <= int(argument) <= most:
        return None
    return int(argument)


async def stats(
    message: Message,
    command: CommandObject,
    team: TeamService,
    clock: Clock,
) -> None:
    days = STATS_DEFAULT_DAYS
    if command.args:
        chosen = _number_argument(command, STATS_MAX_DAYS)
        if chosen is None:
            await message.answer(stats_usage(STATS_MAX_DAYS))
            return
        days = chosen
    now = clock()
    view = await team.stats(message.chat.id, now, days)
    if not view.people:
        await message.answer(NO_PRESSES)
        return
    await message.answer(stats_text(view))
    heat = heat_map_of(view.reach_by_hour, view.posts_by_hour, days)
    await send_chart(message, team, now, heat)


async def send_chart(
    message: Message,
    team: TeamService,
    now: datetime,
    heat: HeatMap | None = None,
) -> None:
    """The picture after the text; a chart that fails to render leaves the text alone."""
    try:
        png = await team.chart(message.chat.id, now, heat)
    except Exception:
        logger.exception("stats.chart_failed")
        return
    if png is not None:
        await message.answer_photo(
            BufferedInputFile(png, filename="stats.png"),
            caption=CHART_CAPTION,
        )


# A cell a spreadsheet would run as a formula (a file or person named "=HYPERLINK(…)").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A CSV cell: times in ISO 8601, nothing for None, text never read as a formula."""
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


async def export(message: Message, team: TeamService, clock: Clock) -> None:
    """The chat's history with its kept Story results, as a CSV document."""
    columns, rows = await team.export(message.chat.id)
    if not rows:
        await message.answer(NO_EXPORT)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(_cell(value) for value in row)
    name = f"storyqueue-{message.chat.id}-{clock():%Y%m%d}.csv"
    # UTF-8 with a byte order mark, so spreadsheets read the emoji and accents right.
    data = buffer.getvalue().encode("utf-8-sig")
    await message.answer_document(BufferedInputFile(data, filename=name), caption=EXPORT_CAPTION)


async def next_item(message: Message, scheduler: Scheduler) -> None:
    result = await scheduler.send_now(message.chat.id)
    if not result.sent:
        await message.answer(nothing_sent_text(result))
        return
    typed_in = message.message_thread_id if message.is_topic_message else None
    if typed_in != result.topic:
        await message.answer(sent_to_topic(result.topic))


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
    router.message.register(export, Command("export"))
    return router
