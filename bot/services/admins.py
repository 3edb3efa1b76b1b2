"""Who may do what: the one access rule (docs/architecture.md §8).

Admins are ADMIN_USER_IDS, the chat's Telegram administrators (cached) and
anonymous admins (who write as the chat). Queue actions are open to everyone
when ALLOWED_USER_IDS is empty, else to those users and to admins.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

import structlog
from aiogram import Bot
from aiogram.exceptions import AiogramError
from pydantic import ValidationError

from bot.domain import TelegramIdentity

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, eq=False)
class AdminDirectory:
    bot: Bot
    configured: frozenset[int]
    _: KW_ONLY
    ttl_seconds: float = 120.0
    monotonic: Callable[[], float] = time.monotonic
    # chat id -> (when read, its administrators)
    _cache: dict[int, tuple[float, frozenset[int]]] = field(init=False, default_factory=dict)

    async def is_admin(self, chat_id: int, actor: TelegramIdentity) -> bool:
        # Telegram lets only a chat's administrators write as the chat: no lookup needed.
        if actor.anonymous_admin or actor.telegram_user_id in self.configured:
            return True
        return actor.telegram_user_id in await self._chat_admins(chat_id)

    async def may_act_on_queue(
        self, chat_id: int, actor: TelegramIdentity, allowed: frozenset[int]
    ) -> bool:
        """Queue buttons and /next: `allowed` (ALLOWED_USER_IDS; empty: everyone) and admins."""
        if not allowed or actor.telegram_user_id in allowed:
            return True
        return await self.is_admin(chat_id, actor)

    async def _chat_admins(self, chat_id: int) -> frozenset[int]:
        cached = self._cache.get(chat_id)
        now = self.monotonic()
        if cached is not None and now - cached[0] < self.ttl_seconds:
            return cached[1]
        try:
            members = await self.bot.get_chat_administrators(chat_id)
        except (AiogramError, ValidationError) as error:
            # An API error, or a body this aiogram cannot decode (ClientDecodeError, a
            # ValidationError): without Telegram's answer only the configured admins count.
            logger.warning(
                "admins.lookup_failed",
                chat_id=chat_id,
                error_type=type(error).__name__,
                error=str(error)[:300],
            )
            return cached[1] if cached is not None else frozenset()
        admins = frozenset(member.user.id for member in members)
        self._cache[chat_id] = (now, admins)
        return admins
