"""The domain's words, named once: the values the database stores and its CHECK constraints allow.

Each enum is a `StrEnum`, so a member is the very string the column holds and
can go straight into a statement's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class QueueStatus(StrEnum):
    """Where an item in flight is (posting_queue.status)."""

    SENDING = "sending"  # claimed; the message is on its way to the chat (a row is born here)
    SENT = "sent"  # in the chat with its buttons, waiting for a press
    PUBLISHING = "publishing"  # held by an Auto Post


class HistoryStatus(StrEnum):
    """How an item left the queue (posting_history.status)."""

    POSTED = "posted"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    FAILED = "failed"  # the send failed; the only unsuccessful status


class LockReason(StrEnum):
    """Why an item may not be sent for a while, or ever (media_locks.reason)."""

    RECENT_POST = "recent_post"
    SKIP = "skip"
    REJECTED = "rejected"
    MANUAL = "manual"


class Verdict(StrEnum):
    """What a queue press decides; its value is the history status it records.

    The buttons spell these differently on the wire (`skip`; see
    bot/keyboards.py), and each verdict locks the item for its own reason:
    both mappings live here and nowhere else.
    """

    POSTED = "posted"
    SKIPPED = "skipped"
    REJECTED = "rejected"

    @property
    def history_status(self) -> HistoryStatus:
        return HistoryStatus(self.value)

    @property
    def lock_reason(self) -> LockReason:
        return _LOCK_REASONS[self]


_LOCK_REASONS = {
    Verdict.POSTED: LockReason.RECENT_POST,
    Verdict.SKIPPED: LockReason.SKIP,
    Verdict.REJECTED: LockReason.REJECTED,
}


class PostingMethod(StrEnum):
    """Who put the Story up (posting_history.posting_method)."""

    TELEGRAM_MANUAL = "telegram_manual"  # a person, after the ✅ Posted button
    INSTAGRAM_API = "instagram_api"  # the bot, through 🤖 Auto Post


class MediaKind(StrEnum):
    PHOTO = "photo"
    VIDEO = "video"


class Framing(StrEnum):
    """How a photo that is not 9:16 becomes a Story (chat_settings.photo_framing)."""

    AS_IS = "as_is"  # its own proportions; Instagram letterboxes it
    BLUR = "blur"  # fitted on a blurred, enlarged copy of itself
    SOLID = "solid"  # fitted on a background of its average colour
    CROP = "crop"  # centre-cropped to 9:16


class UserRole(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class InteractionKind(StrEnum):
    """What a user_interactions row logs."""

    COMMAND = "command"
    CALLBACK = "callback"
    BOT_RESPONSE = "bot_response"


class InstagramFlavour(StrEnum):
    """Which login the access token comes from; it decides how the token is kept alive."""

    INSTAGRAM = "instagram"  # Instagram API with Instagram Login: graph.instagram.com
    FACEBOOK = "facebook"  # Instagram API with Facebook Login: graph.facebook.com


class ExpirySource(StrEnum):
    """Where an Instagram token's expiry came from (instagram_accounts.expires_at_source)."""

    ASSUMED = "assumed"  # 60 days from first use, until Instagram says otherwise
    DEBUG_TOKEN = "debug_token"
    REFRESH = "refresh"


@dataclass(frozen=True, slots=True)
class SettingRange:
    """The whole numbers a chat setting may hold: its CHECK and the /settings validation read it."""

    lowest: int
    highest: int | None = None  # None: no upper bound

    def allows(self, value: int) -> bool:
        return self.lowest <= value and (self.highest is None or value <= self.highest)

    def check(self, column: str) -> str:
        """The CHECK constraint's text for `column`."""
        if self.highest is None:
            return f"{column} >= {self.lowest}"
        return f"{column} BETWEEN {self.lowest} AND {self.highest}"


# chat_settings column -> the values it may hold.
SETTING_RANGES: dict[str, SettingRange] = {
    "posts_per_day": SettingRange(1, 50),
    "posting_hours_start": SettingRange(0, 23),
    "posting_hours_end": SettingRange(0, 23),
    "repost_ttl_days": SettingRange(0),
    "skip_ttl_days": SettingRange(0),
    "sent_ttl_days": SettingRange(1, 365),
    "runway_warning_days": SettingRange(0, 365),
}


# A Story's insights metrics (IG Media Insights): the Graph request asks for these,
# and story_results keeps each in a column of the same name.
STORY_METRICS = (
    "reach",
    "views",
    "replies",
    "shares",
    "navigation",
    "profile_visits",
    "follows",
    "total_interactions",
)
