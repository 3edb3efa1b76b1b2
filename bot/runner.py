"""`python -m bot run`: startup, long polling, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError
from aiogram.types import User

from bot.app import build_dispatcher, build_services, create_bot
from bot.config import ConfigError, Settings
from bot.database import open_database
from bot.handlers.commands import register_commands
from db import migrate

logger = structlog.get_logger(__name__)


@contextmanager
def _cancel_on_signals() -> Iterator[None]:
    """Until polling takes over the signals, SIGTERM/SIGINT cancel startup cleanly."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        yield
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _stop(task: asyncio.Task[None], grace: float) -> None:
    """Let the scheduler finish its tick (bounded), then cancel it."""
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        logger.warning("scheduler.cancelled_at_shutdown")
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _who_am_i(bot: Bot) -> User:
    """getMe: a rejected token is a config error; an unreachable API is retried briefly."""
    for delay in (1.0, 2.0, 4.0, 8.0, 0.0):
        try:
            return await bot.get_me()
        except TelegramUnauthorizedError:
            raise ConfigError("BOT_TOKEN: Telegram rejected the token (401 Unauthorized)") from None
        except (TelegramNetworkError, TelegramServerError) as error:
            if not delay:
                raise TelegramUnreachableError(str(error)) from None
            logger.warning("telegram.unreachable", retry_in=delay, error=str(error))
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class TelegramUnreachableError(Exception):
    """The Bot API did not answer getMe at startup."""


async def run(settings: Settings) -> int:
    try:
        return await _run(settings)
    except asyncio.CancelledError:
        logger.info("bot.stopped_during_startup")
        return 0
    except TelegramUnreachableError as error:
        logger.error("bot.telegram_unreachable", error=str(error))
        return 1


async def _run(settings: Settings) -> int:
    with _cancel_on_signals():
        database_cm = open_database(settings)
        database = await database_cm.__aenter__()
    try:
        with _cancel_on_signals():
            await migrate.upgrade(database.engine)
            bot = create_bot(settings)
        try:
            with _cancel_on_signals():
                me = await _who_am_i(bot)
                services = build_services(settings, database, bot)
                dispatcher = build_dispatcher(settings, database, services)
                # Every listed chat gets its row (default settings) before the first tick.
                for chat_id in settings.chat_ids:
                    await services.team.register_chat(chat_id, None)
                await register_commands(bot)
            logger.info("bot.started", username=me.username, chat_ids=list(settings.chat_ids))
            # Startup objects (aiogram's models, SQLAlchemy's metadata) never die: keep
            # them out of garbage collection so its pauses stay short.
            gc.freeze()
            stop_scheduler = asyncio.Event()
            scheduling = asyncio.create_task(services.scheduler.run(stop_scheduler))
            try:
                await dispatcher.start_polling(
                    bot,
                    allowed_updates=dispatcher.resolve_used_update_types(),
                    handle_signals=True,
                    close_bot_session=False,
                )
            finally:
                stop_scheduler.set()
                await services.tasks.drain(settings.shutdown_grace_seconds)
                await _stop(scheduling, settings.shutdown_grace_seconds)
                await services.close()
        finally:
            await bot.session.close()
    finally:
        await database_cm.__aexit__(None, None, None)
    logger.info("bot.stopped")
    return 0
