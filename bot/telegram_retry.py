"""A request middleware on the bot's session: ride out 429s, 5xx and network blips."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog
from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    GetUpdates,
    SendAnimation,
    SendDocument,
    SendPhoto,
    SendVideo,
)
from aiogram.methods.base import Response
from aiogram.methods.base import TelegramType as T
from aiohttp import ClientConnectorError

from bot.request_middleware import Method, Next

logger = structlog.get_logger(__name__)

# Sending a queue item is retried by the scheduler, which counts each attempt on
# the queue row; repeating it here would duplicate it behind the queue's back.
NOT_REPEATED_HERE = (SendPhoto, SendVideo, SendAnimation, SendDocument)

_at_most_once: ContextVar[bool] = ContextVar("telegram_at_most_once", default=False)


@contextmanager
def at_most_once() -> Iterator[None]:
    """Calls made inside are not repeated once they may have reached Telegram.

    For a message where a duplicate is worse than none. A 429 or a connection
    never made is still repeated: Telegram certainly did nothing then.
    """
    token = _at_most_once.set(True)
    try:
        yield
    finally:
        _at_most_once.reset(token)


def never_sent(error: TelegramNetworkError | TelegramServerError) -> bool:
    """The connection was never made (refused, DNS, TLS), so Telegram never saw the request."""
    return isinstance(error.__cause__, ClientConnectorError)


def delivered_nothing(error: TelegramAPIError) -> bool:
    """Telegram refused the send (a flood wait longer than the request middleware
    waits out included), or never saw it: every connection was refused."""
    if isinstance(error, TelegramNetworkError):
        return never_sent(error)
    return isinstance(error, TelegramBadRequest | TelegramForbiddenError | TelegramRetryAfter)


class TelegramRetryMiddleware(BaseRequestMiddleware):
    def __init__(
        self,
        backoff_seconds: tuple[float, ...] = (0.3, 1.0, 3.0),
        max_retry_after_seconds: float = 30.0,
    ) -> None:
        self._backoff = backoff_seconds
        self._max_retry_after = max_retry_after_seconds

    async def __call__(self, make_request: Next[T], bot: Bot, method: Method[T]) -> Response[T]:
        polling = isinstance(method, GetUpdates)
        repeatable = not isinstance(method, NOT_REPEATED_HERE)
        if polling:
            # The poller has its own backoff; a conflict must be loud.
            try:
                return await make_request(bot, method)
            except TelegramConflictError as conflict:
                if "webhook" in conflict.message:
                    # Startup removed any webhook: someone set one since.
                    logger.critical(
                        "telegram.webhook_conflict",
                        hint="a webhook was set on this bot token while running;"
                        " another deployment uses it: stop it, then restart this bot",
                    )
                else:
                    logger.critical(
                        "telegram.conflict",
                        hint="another process is polling this bot token; stop it",
                    )
                raise
        if not repeatable:
            return await make_request(bot, method)
        delays = iter(self._backoff)
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                delay: Any = error.retry_after
                if delay > self._max_retry_after or next(delays, None) is None:
                    raise
                logger.warning("telegram.retry_after", method=type(method).__name__, seconds=delay)
            except (TelegramNetworkError, TelegramServerError) as error:
                if _at_most_once.get() and not never_sent(error):
                    logger.warning(
                        "telegram.outcome_unknown", method=type(method).__name__, error=str(error)
                    )
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise
                logger.warning(
                    "telegram.retry", method=type(method).__name__, delay=delay, error=str(error)
                )
            await asyncio.sleep(float(delay))
