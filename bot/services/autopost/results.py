"""What a press of 🤖 and an Auto Post come to, for the handler to show."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum, auto

from bot.services.autopost.holds import Hold
from bot.services.instagram import InstagramError
from bot.services.media_host import MediaToHost
from bot.services.press import PressOutcome


class AutoPostRefusal(StrEnum):
    """Why a press of 🤖 did not start a publish (besides the press outcomes)."""

    CHECKING = auto()  # an earlier publish's outcome is being checked with Instagram
    SENDING = auto()  # the item is still being sent to the chat


@dataclass(frozen=True, slots=True)
class AutoPostClaim:
    """A hold the press of 🤖 took, with what the publish needs."""

    hold: Hold
    media: MediaToHost
    video: bool
    dry_run: bool

    @property
    def token(self) -> uuid.UUID:
        return self.hold.token


class AutoPostResult(StrEnum):
    RECORDED = "recorded"
    DRY_RUN = "dry_run"
    FAILED = "failed"  # nothing was published; the item has its buttons back
    CHECKING = "checking"  # the outcome is unknown (or not yet recorded): being resolved


@dataclass(frozen=True, slots=True)
class AutoPostOutcome:
    """How an Auto Post ended; a recorded one's Story id is `press.instagram_media_id`."""

    result: AutoPostResult
    press: PressOutcome | None = None
    error: InstagramError | None = None
