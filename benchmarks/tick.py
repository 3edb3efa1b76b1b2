"""One scheduler tick over 1,000 chats and 100,000 media items: database time and wall time.

The tick's own work (one query finds the due chats, one transaction per 100 due
chats claims their slots) is measured apart from the deliveries, each of which
records its sent message in a transaction of its own (one COMMIT per send; on
Telegram's side a bot sends at most ~30 messages a second anyway).

Telegram is the recording fake, so what is measured is the scheduler and the
database. Database time is the server's own (pg_stat_database.active_time).

`BEFORE` holds the figures of the per-chat claim path this replaced (three
statements per chat), measured with this benchmark on the same machine; the
live figures print beside them. The send budget's throughput is measured last:
messages to many chats through the bot's own budget, so how long a tick with
every chat due takes to reach them all follows from it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, text

from benchmarks.common import Cluster, ms, timer

# Measured on 2 shared cores before claims were batched (main at c004ec5, issue figures).
BEFORE = {
    "claims only, every chat due (1,000)": "database 139 ms (3011 statements), wall 3.5 s",
    "every chat due at once (1,000)": "database 524 ms (4013 statements), wall 4.9 s",
}

CHATS = 1_000
ITEMS_PER_CHAT = 100
TOKEN = "123456:" + "A" * 35
# 09:00-21:00 UTC, 12 posts a day: a slot every hour; NOW is just past the 10:00 slot.
NOW = datetime(2026, 6, 1, 10, 5, tzinfo=UTC)
SLOT = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)

SEED_CHATS = """
INSERT INTO chat_settings (telegram_chat_id, posting_hours_start, posting_hours_end, posts_per_day,
                           last_post_sent_at)
SELECT -1000000 - n, 9, 21, 12, CAST(:last AS timestamptz) FROM generate_series(1, :chats) AS n
"""
SEED_MEDIA = """
INSERT INTO media_items (chat_id, file_path, file_name, file_size, file_hash, media_kind,
                         mime_type, telegram_file_id)
SELECT -1000000 - c, 'cat/item' || n || '.jpg', 'item' || n || '.jpg', 1000,
       md5(c::text || '/' || n::text) || md5(n::text), 'photo', 'image/jpeg', 'photo-' || c || '-' || n
FROM generate_series(1, :chats) AS c, generate_series(1, :items) AS n
"""


class DatabaseTime:
    """The server's own time spent running this database's statements (COMMITs included).

    pg_stat_database.active_time, read after the pool is closed: a backend
    reports its counters when it exits. The client's view (round trips, waiting
    for the event loop) is the wall time beside it.
    """

    def __init__(self, cluster: Cluster, database: str, engine: Any) -> None:
        self._dsn = cluster.dsn(database)
        self._database = database
        self._engine = engine
        self._before = 0.0
        self.statements = 0
        sync = engine.sync_engine
        event.listen(sync, "after_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        self.statements += 1

    async def _active_ms(self) -> float:
        await self._engine.dispose()  # the backends exit and report their counters
        await asyncio.sleep(0.5)
        connection = await asyncpg.connect(self._dsn)
        try:
            await connection.execute("SELECT pg_stat_clear_snapshot()")
            value = await connection.fetchval(
                "SELECT active_time FROM pg_stat_database WHERE datname = $1", self._database
            )
        finally:
            await connection.close()
        return float(value or 0.0)

    async def start(self) -> None:
        self._before = await self._active_ms()
        self.statements = 0

    async def seconds(self) -> float:
        return (await self._active_ms() - self._before) / 1000


async def run(cluster: Cluster) -> None:
    from bot.app import create_bot
    from bot.config import Settings
    from bot.presentation.notifier import TelegramNotifier
    from bot.services.delivery import Delivery
    from bot.services.scheduler import CLAIM_BATCH, ChatBackoff, Scheduler
    from tests.helpers.fake_telegram_session import RecordingSession

    async with cluster.fresh_engine(pool_size=5, command_timeout_seconds=300) as database:
        sessions = database.sessions
        started = timer()
        async with sessions() as session, session.begin():
            await session.execute(text(SEED_CHATS), {"chats": CHATS, "last": SLOT})
            await session.execute(text(SEED_MEDIA), {"chats": CHATS, "items": ITEMS_PER_CHAT})
        await database.analyze()
        print(
            f"tick: {CHATS} chats x {ITEMS_PER_CHAT} items = {CHATS * ITEMS_PER_CHAT:,} media,"
            f" seeded in {timer() - started:.1f} s"
        )
        data_dir = Path(tempfile.mkdtemp(prefix="sqbench"))
        settings = Settings(_env_file=None, bot_token=TOKEN, data_dir=data_dir, media_dir=data_dir)  # type: ignore[call-arg]
        telegram = RecordingSession()
        notifier = TelegramNotifier(
            create_bot(settings, session=telegram), data_dir, instagram=False
        )
        clock = {"now": NOW}
        scheduler = Scheduler(
            sessions,
            Delivery(sessions, notifier, stuck_after=timedelta(minutes=5)),
            chat_backoff=ChatBackoff(),
            data_dir=data_dir,
            clock=lambda: clock["now"],
        )
        measured = DatabaseTime(cluster, database.name, database.engine)

        async def owe(due: int) -> None:
            async with sessions() as session, session.begin():
                await session.execute(
                    text(
                        "UPDATE chat_settings SET last_post_sent_at = NULL"
                        " WHERE telegram_chat_id IN (SELECT telegram_chat_id FROM chat_settings"
                        " ORDER BY telegram_chat_id LIMIT :due)"
                    ),
                    {"due": due},
                )

        async def claims_only(label: str, due: int) -> None:
            """The tick's own work (find the due chats, claim their slots), no sends."""
            await owe(due)
            await measured.start()
            started, cpu = timer(), time.process_time()
            chats = await scheduler.due_chats()
            claimed = 0
            for start in range(0, len(chats), CLAIM_BATCH):
                claimed += len(await scheduler.claim_due(chats[start : start + CLAIM_BATCH]))
            wall, cpu = timer() - started, time.process_time() - cpu
            database = await measured.seconds()
            print(
                f"  {label:<34} {claimed:>5} claimed database {ms(database):>11}"
                f" ({measured.statements} statements)   wall {ms(wall)}"
                f" (this process's CPU {ms(cpu)}; the rest is waiting for the cores)"
            )
            if label in BEFORE:
                print(f"  {'   before batching:':<40} {BEFORE[label]}")
            async with sessions() as session, session.begin():
                await session.execute(text("DELETE FROM posting_queue WHERE status = 'sending'"))

        async def tick(label: str, due: int) -> None:
            if due:
                await owe(due)
            sent_before = len(telegram.calls)
            await measured.start()
            started = timer()
            await scheduler.tick()
            wall = timer() - started
            database = await measured.seconds()
            sent = len(telegram.calls) - sent_before
            print(
                f"  {label:<34} {sent:>5} sent   database {ms(database):>11}"
                f" ({measured.statements} statements)   wall {ms(wall)}"
            )
            if label in BEFORE:
                print(f"  {'   before batching:':<40} {BEFORE[label]}")

        await tick("idle tick (no chat due)", 0)
        await tick("typical tick (10 chats due)", 10)
        clock["now"] += timedelta(hours=1)
        await claims_only("claims only, every chat due (1,000)", CHATS)
        await tick("every chat due at once (1,000)", CHATS)
        clock["now"] += timedelta(minutes=1)
        await tick("the tick after (nothing due)", 0)
    await budget_throughput()


async def budget_throughput(messages: int = 150) -> None:
    """Messages to `messages` chats at once through the send budget: what it lets out."""
    from aiogram.methods import SendMessage

    from bot.app import create_bot
    from bot.config import Settings
    from bot.send_budget import SendBudget
    from tests.helpers.fake_telegram_session import RecordingSession

    data_dir = Path(tempfile.mkdtemp(prefix="sqbench"))
    settings = Settings(_env_file=None, bot_token=TOKEN, data_dir=data_dir, media_dir=data_dir)  # type: ignore[call-arg]
    budget = SendBudget()
    bot = create_bot(settings, session=RecordingSession(), budget=budget)
    started = timer()
    await asyncio.gather(
        *(bot(SendMessage(chat_id=-1000000 - n, text="hi")) for n in range(messages))
    )
    wall = timer() - started
    rate = messages / wall
    print(
        f"  send budget: {messages} messages to {messages} chats in {wall:.1f} s"
        f" = {rate:.1f} a second (limit {budget.limits.bot_per_second:.0f} + burst"
        f" {budget.limits.bot_burst}); every chat of {CHATS:,} due reached in about"
        f" {CHATS / rate:.0f} s"
    )
    one_chat = 5
    started = timer()
    for _ in range(one_chat):
        await bot(SendMessage(chat_id=-1, text="hi"))
    print(
        f"  send budget: {one_chat} messages to one group in {timer() - started:.1f} s"
        f" (one every {budget.limits.chat_interval_seconds} s)"
    )
