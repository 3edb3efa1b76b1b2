"""`python -m bot run`: startup, long polling, graceful shutdown."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import TypeVar

import structlog
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from bot.app import App, build_app
from bot.config import ConfigError, Settings
from bot.database import open_database
from bot.handlers.commands import register_commands
from bot.logging import SecretRedactor
from db import migrate

logger = structlog.get_logger(__name__)
T = TypeVar("T")


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
    """Let a background loop finish its round (bounded), then cancel it.

    A loop that died of an exception is logged here, and the others still stop.
    """
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        logger.warning("background.cancelled_at_shutdown", task=task.get_name())
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        logger.exception("background.failed", task=task.get_name())


async def _at_startup(call: Callable[[], Awaitable[T]], what: str) -> T:
    """A startup request: a rejected token is a config error; an unreachable API is retried."""
    for delay in (1.0, 2.0, 4.0, 8.0, 0.0):
        try:
            return await call()
        except TelegramUnauthorizedError:
            raise ConfigError("BOT_TOKEN: Telegram rejected the token (401 Unauthorized)") from None
        except (TelegramNetworkError, TelegramServerError) as error:
            if not delay:
                raise TelegramUnreachableError(f"{what}: {error}") from None
            logger.warning("telegram.unreachable", request=what, retry_in=delay, error=str(error))
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def _take_over_from_webhook(bot: Bot) -> None:
    """Long polling cannot start while a webhook is set: remove it, keeping what waits.

    deleteWebhook is idempotent (a second call answers "already deleted"), so a
    lost answer is simply asked again; pending updates stay queued for getUpdates.
    """
    info = await _at_startup(bot.get_webhook_info, "getWebhookInfo")
    if not info.url:
        return
    await _at_startup(lambda: bot.delete_webhook(drop_pending_updates=False), "deleteWebhook")
    logger.warning(
        "telegram.webhook_removed",
        url=info.url,
        pending_updates=info.pending_update_count,
        hint="long polling took over; pending updates were kept",
    )


async def _register_commands(bot: Bot) -> None:
    """The command menu is a convenience: a refusal or a flaky API never stops the bot."""
    try:
        await register_commands(bot)
    except TelegramAPIError as error:
        logger.warning("telegram.commands_not_set", error=str(error))


class TelegramUnreachableError(Exception):
    """The Bot API did not answer at startup."""


async def run(settings: Settings, redactor: SecretRedactor | None = None) -> int:
    try:
        return await _run(settings, redactor or SecretRedactor())
    except asyncio.CancelledError:
        logger.info("bot.stopped_during_startup")
        return 0
    except TelegramUnreachableError as error:
        logger.error("bot.telegram_unreachable", error=str(error))
        return 1


async def _shut_down(
    app: App, stop_background: asyncio.Event, background: list[asyncio.Task[None]], grace: float
) -> None:
    """Stop the next ticks, let presses in flight finish, then the background loops.

    One grace for all: they wind down side by side from the moment `stop` is set,
    so a stuck loop is cancelled `grace` after it, not after a grace of its own
    added to each before it (which would outlast a supervisor's stop timeout).
    """
    stop_background.set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    await app.services.tasks.drain(grace)
    for task in background:
        await _stop(task, max(0.0, deadline - loop.time()))


async def _run(settings: Settings, redactor: SecretRedactor) -> int:
    # Unwinds in reverse: background loops and presses, HTTP clients, the bot's session,
    # the database.
    async with AsyncExitStack() as stack:
        with _cancel_on_signals():
            database = await stack.enter_async_context(open_database(settings))
            await migrate.upgrade(database.engine)
            app = build_app(settings, database, on_secret=redactor.add)
            stack.push_async_callback(app.bot.session.close)
            stack.push_async_callback(app.services.close)
            me = await _at_startup(app.bot.get_me, "getMe")
            await _take_over_from_webhook(app.bot)
            # A configured chat Telegram upgraded is served under its new id (warned each start).
            directory = app.services.chat_directory
            await directory.load()
            for configured in settings.chat_ids:
                await app.services.team.register_chat(
                    directory.resolve(configured), None, topic=settings.chat_topics.get(configured)
                )
            # After every chat is registered: an account refers to its chat's row.
            await app.services.instagram_accounts.sync()
            await _register_commands(app.bot)
        logger.info(
            "bot.started",
            username=me.username,
            chat_ids=list(app.services.chat_directory.served()),
        )
        # Startup objects (aiogram's models, SQLAlchemy's metadata) never die: keep
        # them out of garbage collection so its pauses stay short.
        gc.freeze()
        stop_background = asyncio.Event()
        background = [
            asyncio.create_task(app.services.scheduler.run(stop_background), name="scheduler"),
            asyncio.create_task(app.services.token_care.run(stop_background), name="token_care"),
            asyncio.create_task(app.services.runway.run(stop_background), name="runway"),
        ]
        if app.services.instagram_accounts.chat_ids:
            background.append(
                asyncio.create_task(
                    app.services.story_results.run(stop_background), name="story_results"
                )
            )
        if app.services.autopost is not None:
            # Resolves Auto Posts a restart or an unknown outcome left `publishing`;
            # one still running after the grace is handed over (AutoPostService.publish).
            background.append(
                asyncio.create_task(app.services.autopost.run(stop_background), name="autopost")
            )
        stack.push_async_callback(
            _shut_down, app, stop_background, background, settings.shutdown_grace_seconds
        )
        await app.dispatcher.start_polling(
            app.bot,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
            handle_signals=True,
            close_bot_session=False,
        )
    logger.info("bot.stopped")
    return 0
