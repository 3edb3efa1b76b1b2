"""/status's Instagram part as plain data: today's publishing usage and the token's health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.services.accounts.tokens import AccountHealth
from bot.services.instagram import InstagramError, PublishingQuota


@dataclass(frozen=True, slots=True)
class InstagramStatus:
    """A chat's account as /status shows it, read at `now`."""

    now: datetime
    quota: PublishingQuota | None  # None: it could not be read
    quota_refused: InstagramError | None  # why, when Instagram answered; None: no answer in time
    health: AccountHealth | None  # None: not checked yet


class AutoPostUnavailable(StrEnum):
    """Why the 🤖 button cannot run in a chat now."""

    NOT_CONFIGURED = "not_configured"  # no account for the chat, or no public media URL
    TOKEN_EXPIRED = "token_expired"
