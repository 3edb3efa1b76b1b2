"""What is known of a chat's token: its flavour, its expiry, whether refreshing fails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from db.vocabulary import ExpirySource, InstagramFlavour

# Without /debug_token or a refresh answer, a long-lived token is assumed to
# last this long from when we first saw it.
ASSUMED_LIFETIME = timedelta(days=60)


@dataclass(frozen=True, slots=True)
class AccountHealth:
    """What the database says about a chat's token."""

    flavour: InstagramFlavour
    expires_at: datetime | None
    expires_at_source: ExpirySource
    last_refresh_error: str | None

    def days_left(self, now: datetime) -> float | None:
        if self.expires_at is None:
            return None
        return (self.expires_at - now).total_seconds() / 86400

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now
