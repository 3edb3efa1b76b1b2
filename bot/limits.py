"""Telegram's text limits, in the one place they are measured and enforced.

Telegram counts in UTF-16 code units, after entities are parsed (the visible
text, tags removed, `&amp;` one character): a toast (answerCallbackQuery) 200,
a caption 1,024, a message 4,096. Over the limit, Telegram refuses the call
(400 MESSAGE_TOO_LONG or "caption is too long") and the user sees nothing.

The builders in `bot.presentation` keep within these by design (a
test table feeds them worst-case inputs). `TextLimitsMiddleware`, on the bot's
session, is the backstop for anything else: it shortens an over-long text
before it leaves, keeping the HTML well formed, and logs that it did.
"""

from __future__ import annotations

from html import unescape
from html.parser import HTMLParser
from typing import Any

import structlog
from aiogram import Bot
from aiogram.client.default import Default
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.enums import ParseMode
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageCaption,
    EditMessageText,
    SendAnimation,
    SendDocument,
    SendMessage,
    SendPhoto,
    SendVideo,
    TelegramMethod,
)
from aiogram.methods.base import Response
from aiogram.methods.base import TelegramType as T

from bot.request_middleware import Method, Next

logger = structlog.get_logger(__name__)

TOAST_LIMIT = 200
CAPTION_LIMIT = 1024
MESSAGE_LIMIT = 4096
ELLIPSIS = "…"


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _Tokens(HTMLParser):
    """HTML as (raw, visible text, tag) tokens, entity references kept whole."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.tokens: list[tuple[str, str, str | None, bool]] = []  # raw, text, tag, opens

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tokens.append((self.get_starttag_text() or f"<{tag}>", "", tag, True))

    def handle_endtag(self, tag: str) -> None:
        self.tokens.append((f"</{tag}>", "", tag, False))

    def handle_data(self, data: str) -> None:
        self.tokens.append((data, data, None, False))

    def handle_entityref(self, name: str) -> None:
        raw = f"&{name};"
        self.tokens.append((raw, unescape(raw), None, False))

    def handle_charref(self, name: str) -> None:
        raw = f"&#{name};"
        self.tokens.append((raw, unescape(raw), None, False))


def _tokens(html: str) -> list[tuple[str, str, str | None, bool]]:
    parser = _Tokens()
    parser.feed(html)
    parser.close()
    return parser.tokens


def visible_length(html: str) -> int:
    """The length Telegram counts for an HTML text: its visible characters, in UTF-16 units."""
    return sum(utf16_length(text) for _, text, _, _ in _tokens(html))


def _prefix(text: str, budget: int) -> str:
    """The longest start of `text` within `budget` UTF-16 units (never half a surrogate pair)."""
    used = 0
    for position, character in enumerate(text):
        used += utf16_length(character)
        if used > budget:
            return text[:position]
    return text


def fit_plain(text: str, limit: int) -> str:
    """`text`, or its start and "…" when it is longer than `limit` UTF-16 units."""
    if utf16_length(text) <= limit:
        return text
    return _prefix(text, limit - utf16_length(ELLIPSIS)).rstrip() + ELLIPSIS


def fit_html(html: str, limit: int) -> str:
    """`html`, or its start and "…" with every open tag closed, within `limit` visible units."""
    if visible_length(html) <= limit:
        return html
    budget = limit - utf16_length(ELLIPSIS)
    kept: list[str] = []
    open_tags: list[str] = []
    for raw, text, tag, opens in _tokens(html):
        if tag is not None:
            if opens:
                open_tags.append(tag)
            elif tag in open_tags:
                del open_tags[len(open_tags) - 1 - open_tags[::-1].index(tag)]
            kept.append(raw)
            continue
        length = utf16_length(text)
        if length <= budget:
            kept.append(raw)
            budget -= length
            continue
        if raw == text:  # plain data: keep what fits; an entity is kept whole or not at all
            kept.append(_prefix(text, budget))
        break
    kept.append(ELLIPSIS)
    kept.extend(f"</{tag}>" for tag in reversed(open_tags))
    return "".join(kept)


def _is_html(bot: Bot, parse_mode: Any) -> bool:
    if isinstance(parse_mode, Default):
        parse_mode = bot.default[parse_mode.name] if bot.default else None
    return bool(parse_mode == ParseMode.HTML)


def _fitted(bot: Bot, method: TelegramMethod[Any]) -> dict[str, str]:
    """The text fields of `method` that must be shortened, shortened; empty when all fit."""
    if isinstance(method, AnswerCallbackQuery):
        field, limit, parse_mode = "text", TOAST_LIMIT, None
    elif isinstance(method, SendMessage | EditMessageText):
        field, limit, parse_mode = "text", MESSAGE_LIMIT, method.parse_mode
    elif isinstance(
        method, SendPhoto | SendVideo | SendAnimation | SendDocument | EditMessageCaption
    ):
        field, limit, parse_mode = "caption", CAPTION_LIMIT, method.parse_mode
    else:
        return {}
    text = getattr(method, field)
    if not isinstance(text, str):
        return {}
    fitted = fit_html(text, limit) if _is_html(bot, parse_mode) else fit_plain(text, limit)
    return {} if fitted == text else {field: fitted}


class TextLimitsMiddleware(BaseRequestMiddleware):
    """Shortens a text over Telegram's limit before it is sent, rather than have it refused."""

    async def __call__(self, make_request: Next[T], bot: Bot, method: Method[T]) -> Response[T]:
        changes = _fitted(bot, method)
        if changes:
            logger.warning("telegram.text_shortened", method=type(method).__name__)
            method = method.model_copy(update=changes)
        return await make_request(bot, method)
