"""What Auto Post tells the team, as plain facts; the composition root injects who shows them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum, auto
from typing import Protocol

from bot.services.instagram import InstagramError
from bot.services.press import PressOutcome


class AutoPostStep(StrEnum):
    """What an Auto Post in progress is doing, shown under the item."""

    PUBLISHING = auto()
    CHECKING = auto()  # the outcome is unknown: being asked of Instagram
    RECORDING = auto()  # published; the record did not land yet


class GiveBackReason(StrEnum):
    """Why the item got its buttons back (nothing was published)."""

    FAILED = auto()  # Instagram refused or failed; the error says why
    DRY_RUN = auto()
    INTERRUPTED = auto()  # stopped before any publish request left
    UNEXPECTED = auto()  # a bug, logged
    UNRESOLVABLE = auto()  # the chat's account is gone: nobody can ask Instagram


@dataclass(frozen=True, slots=True)
class ItemMessage:
    """The item's message in the chat, and what its caption is built from."""

    queue_id: uuid.UUID
    chat_id: int
    message_id: int | None  # None: nothing to edit
    body: str | None  # the caption as the pressed message showed it, when known
    file_name: str
    category: str | None
    caption: str | None


class AutoPostBoard(Protocol):
    """Shows an Auto Post's progress and end under its item; best effort (the row has the state)."""

    async def show_progress(
        self, message: ItemMessage, step: AutoPostStep, *, answer: InstagramError | None = None
    ) -> None:
        """The step, without buttons; `answer`: what Instagram said while checking."""

    async def restore_buttons(
        self, message: ItemMessage, reason: GiveBackReason, *, error: InstagramError | None = None
    ) -> None:
        """Nothing was published: the buttons come back and the caption says why."""

    async def show_outcome(self, message: ItemMessage, outcome: PressOutcome) -> bool:
        """The recorded outcome, without buttons; False when the edit did not land."""
