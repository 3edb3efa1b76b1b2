"""The scheduler as the scheduler tests build it, and the library and window they seed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.app import create_bot
from bot.presentation.notifier import TelegramNotifier
from bot.services.delivery import Delivery
from bot.services.scheduler import ChatBackoff, Scheduler
from tests.helpers.fake_telegram_session import RecordingSession
from tests.helpers.support import JPEG, Clock, TestApp, seed_chat, seed_media

# The scheduler tests' now: 10:05 UTC, inside the window `seed_window` opens (09:00 to 21:00).
NOW = datetime(2026, 6, 1, 10, 5, tzinfo=UTC)


def make_scheduler(
    app: TestApp,
    clock: Clock,
    session: RecordingSession | None = None,
    sessions: Any = None,
    chat_ids: tuple[int, ...] | None = None,
) -> Scheduler:
    """The real scheduler on the app's settings, at `clock`'s time; no delivery backoff."""
    bot = create_bot(app.settings, session=session or app.telegram)
    notifier = TelegramNotifier(bot, app.settings.media_dir, instagram=False)
    sessions = sessions or app.sessions
    delivery = Delivery(sessions, notifier, backoff_seconds=(0.0, 0.0))
    return Scheduler(
        sessions,
        delivery,
        chat_backoff=ChatBackoff(),
        data_dir=app.settings.data_dir,
        clock=clock,
        chat_ids=chat_ids,
    )


async def seed_library(app: TestApp, count: int = 1, **values: Any) -> list[uuid.UUID]:
    """`count` photos in the library, as rows and as files in MEDIA_DIR/cat."""
    media_dir: Path = app.settings.media_dir
    (media_dir / "cat").mkdir(parents=True, exist_ok=True)
    ids = await seed_media(app.sessions, count=count, **values)
    for index in range(count):
        (media_dir / "cat" / f"item{index}.jpg").write_bytes(JPEG)
    return ids


async def seed_window(app: TestApp, **values: Any) -> None:
    """The team chat, posting 12 a day between 09:00 and 21:00."""
    await seed_chat(
        app.sessions, posting_hours_start=9, posting_hours_end=21, posts_per_day=12, **values
    )
