"""Team commands (design §5): /start /help /status /queue /next /history /stats.

The admin commands are bot.handlers.admin's.
"""

from __future__ import annotations

import re
from datetime import datetime
from html import escape

import structlog
from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BotCommand, BufferedInputFile, Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.middlewares import ACTS_ON_QUEUE, PRIVATE_OK
from bot.services.chart import activity_chart
from bot.services.clock import Clock
from bot.services.instagram_accounts import InstagramAccounts
from bot.services.scheduler import NothingToSend, Scheduler
from bot.services.team import TeamService
from bot.texts import COMMANDS, HELP, INTRO, ago, file_label, fit_message, local

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
    message: Message, team: TeamService, instagram_accounts: InstagramAccounts, clock: Clock
) -> None:
    now = clock()
    view = await team.status(message.chat.id, now)
    chat = view.chat
    lines = []
    if chat.is_paused:
        who = escape(view.paused_by or "someone")
        since = local(chat.paused_at, chat.timezone) if chat.paused_at else "?"
        lines.append(f"⏸ <b>Paused</b> by {who} since {since}")
    else:
        lines.append("▶️ <b>Running</b>" + (" (dry run)" if chat.dry_run else ""))
    lines.append(f"📬 In flight: {view.in_flight}")
    if view.next_slot is not None:
        lines.append(
            f"⏰ Next slot: {local(view.next_slot, chat.timezone)} ({escape(chat.timezone)})"
        )
    if view.last_post is not None:
        last = view.last_post
        lines.append(
            f"🕘 Last post: <code>{escape(view.last_post_file or '?')}</code> by "
            f"{escape(last.acted_by_name or 'someone')}, {ago(last.acted_at, now)}"
        )
    else:
        lines.append("🕘 Last post: none yet")
    lines.append(f"🗂 Library: {view.library} items, {view.eligible} eligible now")
    if chat.posts_per_day:
        days = view.eligible / chat.posts_per_day
        lines.append(
            f"📆 The eligible pool lasts about {days:.0f} days at {chat.posts_per_day} a day"
        )
    lines.extend(await instagram_accounts.status_lines(message.chat.id))
    await message.answer("\n".join(lines))


async def queue(message: Message, team: TeamService, clock: Clock) -> None:
    now = clock()
    rows = await team.in_flight(message.chat.id)
    if not rows:
        await message.answer("📭 Nothing is waiting for a press.")
        return
    state = {
        "sent": "waiting for a press",
        "sending": "being sent",
        "pending": "queued",
        "publishing": "being posted to Instagram",
    }
    lines = [
        f"{position}. {file_label(media.file_name)} — "
        f"{state.get(item.status, item.status)}, {ago(item.created_at, now)}"
        for position, (item, media) in enumerate(rows, 1)
    ]
    await message.answer(fit_message(f"📬 <b>{len(rows)} in flight</b>", lines))


async def history(
    message: Message, command: CommandObject, team: TeamService, clock: Clock
) -> None:
    limit = HISTORY_DEFAULT
    if command.args:
        argument = command.args.strip()
        # Only ASCII digits: str.isdigit() also accepts "²", which int() refuses.
        if not re.fullmatch(r"[0-9]{1,3}", argument) or not 1 <= int(argument) <= HISTORY_MAX:
            await message.answer(f"Usage: /history [n] with n from 1 to {HISTORY_MAX}.")
            return
        limit = int(argument)
    rows = await team.history(message.chat.id, limit)
    if not rows:
        await message.answer("No history yet.")
        return
    now = clock()
    icons = {"posted": "✅", "skipped": "⏭️", "rejected": "🚫", "failed": "⚠️"}
    lines = []
    for entry, media in rows:
        who = escape(entry.acted_by_name or "the bot")
        what = entry.status + (" via Instagram" if entry.posting_method == "instagram_api" else "")
        lines.append(
            f"{icons.get(entry.status, '•')} {file_label(media.file_name)} — "
            f"{what} by {who}, {ago(entry.acted_at, now)}"
        )
    await message.answer(fit_message(f"🧾 <b>Last {len(rows)}</b>", lines))


async def stats(
    message: Message,
    team: TeamService,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> None:
    now = clock()
    people = await team.stats(message.chat.id, now)
    if not people:
        await message.answer("No presses recorded yet.")
        return
    lines = ["📊 <b>posted / skipped / rejected</b>"]
    for person in people:
        lines.append(
            f"{escape(person.name)}: 7d {'/'.join(map(str, person.week))} · "
            f"30d {'/'.join(map(str, person.month))} · all {'/'.join(map(str, person.total))}"
        )
    await message.answer("\n".join(lines))
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
            caption="📈 Presses per day, last 4 weeks, by person",
        )


async def next_item(message: Message, scheduler: Scheduler) -> None:
    result = await scheduler.send_now(message.chat.id)
    if result.sent:
        return
    if result.error:
        await message.answer(f"⚠️ Couldn't send the next item: {escape(result.error)}")
    elif result.reason is NothingToSend.EMPTY_LIBRARY:
        await message.answer(
            "📭 Nothing to send: the library is empty. "
            "Index media with <code>python -m bot index DIR</code>."
        )
    elif result.reason is NothingToSend.ALL_QUEUED:
        await message.answer(
            f"📬 Nothing to send: every unlocked item is already in the queue "
            f"({result.queued} in flight)."
        )
    else:
        await message.answer(
            f"🔒 Nothing to send: all {result.total} items are locked "
            f"(recently posted, skipped or rejected) or in the queue "
            f"({result.locked} locked, {result.queued} in flight)."
        )


async def register_commands(bot: Bot) -> None:
    await bot.set_my_commands(bot_commands())


def create_router() -> Router:
    router = Router(name=__name__)
    # The chat gate (bot.middlewares) reads the flags.
    router.message.register(start, Command("start"), flags={PRIVATE_OK: True})
    router.message.register(help_, Command("help"), flags={PRIVATE_OK: True})
    router.message.register(status, Command("status"))
    router.message.register(queue, Command("queue"))
    router.message.register(next_item, Command("next"), flags={ACTS_ON_QUEUE: True})
    router.message.register(history, Command("history"))
    router.message.register(stats, Command("stats"))
    return router
