"""Short names for a Bot API request middleware's signature, so ours declare it in one line.

Each of our request middlewares (text limits, send budget, retries) reads as
`async def __call__(self, make_request: Next[T], bot: Bot, method: Method[T]) -> Response[T]`.
"""

from __future__ import annotations

from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
from aiogram.methods import TelegramMethod

Next = NextRequestMiddlewareType
Method = TelegramMethod
