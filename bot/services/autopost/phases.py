"""Auto Post's phases: one pure function from a queue row's columns, and the allowed moves.

The phase is never stored: it is read from the columns a restart, a second
process and a re-press all see (docs/architecture.md §7). Who holds the row
(the lease) is a separate question, judged only by SQL against the database's
now(): renewing and handing over change the lease, never the phase.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum, auto

from db.vocabulary import QueueStatus


class AutoPostPhase(StrEnum):
    """Where an item is on its way through an Auto Post."""

    SENDING = auto()  # not in the chat yet: 🤖 cannot be pressed
    OFFERED = auto()  # in the chat with its buttons
    CLAIMED = auto()  # held for an Auto Post; nothing exists on Instagram
    CONTAINER_MADE = auto()  # a container exists; no publish request left
    PUBLISH_REQUESTED = auto()  # from here only the container's status decides
    PUBLISHED = auto()  # the Story's id is known; recording it is all that is left
    SETTLED = auto()  # a press statement wrote the history row; the queue row is gone


Phase = AutoPostPhase

# Every move an Auto Post may make, with the module that makes it. A move not
# listed here is a bug: `check_transition` raises on it.
TRANSITIONS: dict[tuple[AutoPostPhase, AutoPostPhase], str] = {
    (Phase.OFFERED, Phase.CLAIMED): "publish: 🤖 pressed, the claim holds the item",
    (Phase.CLAIMED, Phase.CLAIMED): "publish: a claim takes over a hold whose lease ended",
    (Phase.CONTAINER_MADE, Phase.CLAIMED): "publish: a claim takes over a hold whose lease ended",
    (Phase.CLAIMED, Phase.CONTAINER_MADE): "publish: the container is made",
    (Phase.CONTAINER_MADE, Phase.PUBLISH_REQUESTED): "publish: marked before media_publish",
    (Phase.PUBLISH_REQUESTED, Phase.PUBLISHED): "publish, resolve: the Story's id is kept",
    (Phase.PUBLISH_REQUESTED, Phase.SETTLED): "publish, resolve: recorded, the Story unnamed",
    (Phase.PUBLISHED, Phase.SETTLED): "publish, resolve: recorded",
    (Phase.CLAIMED, Phase.OFFERED): "holds: given back (failed, dry run, interrupted)",
    (Phase.CONTAINER_MADE, Phase.OFFERED): "holds: given back (failed, dry run, interrupted)",
    (Phase.PUBLISH_REQUESTED, Phase.OFFERED): "holds: given back (the container did not publish)",
    (Phase.OFFERED, Phase.SETTLED): "press statement: ✅ ⏭️ 🚫",
    (Phase.CLAIMED, Phase.SETTLED): "press statement: ✅ ⏭️ 🚫 on an abandoned hold",
    (Phase.CONTAINER_MADE, Phase.SETTLED): "press statement: ✅ ⏭️ 🚫 on an abandoned hold",
}


class ForbiddenTransition(RuntimeError):
    """A move the table does not list: the code disagrees with the state machine."""


def check_transition(current: AutoPostPhase, target: AutoPostPhase) -> None:
    """Raise unless `current -> target` is listed in TRANSITIONS."""
    if (current, target) not in TRANSITIONS:
        raise ForbiddenTransition(f"Auto Post may not move from {current} to {target}")


def phase_of(
    status: QueueStatus,
    *,
    instagram_creation_id: str | None,
    instagram_publish_requested_at: datetime | None,
    instagram_media_id: str | None,
) -> AutoPostPhase:
    """The phase a queue row's columns stand for (a row that exists is never SETTLED)."""
    if status == QueueStatus.SENT:
        return Phase.OFFERED
    if status != QueueStatus.PUBLISHING:
        return Phase.SENDING
    if instagram_media_id is not None:
        return Phase.PUBLISHED
    # The marker, not the container, decides: it is written before the request leaves.
    if instagram_publish_requested_at is not None:
        return Phase.PUBLISH_REQUESTED
    if instagram_creation_id is not None:
        return Phase.CONTAINER_MADE
    return Phase.CLAIMED
