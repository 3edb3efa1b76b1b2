"""Auto Post's state machine without a database: phase_of, the table, and the holds that obey it."""

from __future__ import annotations

import ast
import itertools
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.domain import TelegramIdentity
from bot.services import autopost
from bot.services.autopost import (
    TRANSITIONS,
    AutoPostPhase,
    Hold,
    ItemMessage,
    phase_of,
)
from bot.services.autopost.holds import Holds, autopost_lease
from bot.services.autopost.phases import ForbiddenTransition, check_transition
from db.vocabulary import QueueStatus

Phase = AutoPostPhase
CONTAINER = "container-1"
REQUESTED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MEDIA = "ig-media-1"

# Every combination of the three Auto Post columns on a `publishing` row:
# (container, marker, media id) -> phase. The marker, not the container, decides
# whether a request may have left; a known media id outranks both.
PUBLISHING_PHASES = {
    (False, False, False): Phase.CLAIMED,
    (True, False, False): Phase.CONTAINER_MADE,
    (False, True, False): Phase.PUBLISH_REQUESTED,
    (True, True, False): Phase.PUBLISH_REQUESTED,
    (False, False, True): Phase.PUBLISHED,
    (True, False, True): Phase.PUBLISHED,
    (False, True, True): Phase.PUBLISHED,
    (True, True, True): Phase.PUBLISHED,
}

# The column values each step writes, and where the table says it lands.
COLUMN_STEPS: dict[tuple[AutoPostPhase, AutoPostPhase], dict[str, Any]] = {
    (Phase.CLAIMED, Phase.CONTAINER_MADE): {"instagram_creation_id": CONTAINER},
    (Phase.CONTAINER_MADE, Phase.PUBLISH_REQUESTED): {"instagram_publish_requested_at": REQUESTED},
    (Phase.PUBLISH_REQUESTED, Phase.PUBLISHED): {"instagram_media_id": MEDIA},
}
# The columns a hold in each publishing phase has.
HOLD_COLUMNS: dict[AutoPostPhase, dict[str, Any]] = {
    Phase.CLAIMED: {},
    Phase.CONTAINER_MADE: {"instagram_creation_id": CONTAINER},
    Phase.PUBLISH_REQUESTED: {
        "instagram_creation_id": CONTAINER,
        "instagram_publish_requested_at": REQUESTED,
    },
    Phase.PUBLISHED: {
        "instagram_creation_id": CONTAINER,
        "instagram_publish_requested_at": REQUESTED,
        "instagram_media_id": MEDIA,
    },
}


def _hold(phase: AutoPostPhase) -> Hold:
    message = ItemMessage(uuid.uuid4(), -100, 7, None, "a.jpg", None, None)
    return Hold(message, uuid.uuid4(), TelegramIdentity(1), **HOLD_COLUMNS[phase])


def _columns(container: bool, marker: bool, media: bool) -> dict[str, Any]:
    return {
        "instagram_creation_id": CONTAINER if container else None,
        "instagram_publish_requested_at": REQUESTED if marker else None,
        "instagram_media_id": MEDIA if media else None,
    }


@pytest.mark.parametrize("status", list(QueueStatus))
@pytest.mark.parametrize("present", list(itertools.product([False, True], repeat=3)))
def test_phase_of_every_combination_of_columns(
    status: QueueStatus, present: tuple[bool, bool, bool]
) -> None:
    expected = {
        QueueStatus.PUBLISHING: PUBLISHING_PHASES[present],
        QueueStatus.SENT: Phase.OFFERED,
    }.get(status, Phase.SENDING)

    assert phase_of(status, **_columns(*present)) is expected


def test_every_listed_move_is_allowed_and_every_other_refused() -> None:
    for current, target in itertools.product(AutoPostPhase, repeat=2):
        if (current, target) in TRANSITIONS:
            check_transition(current, target)
        else:
            with pytest.raises(ForbiddenTransition):
                check_transition(current, target)


def test_every_phase_but_sending_takes_part_and_settled_is_the_end() -> None:
    moved = {phase for move in TRANSITIONS for phase in move}
    assert moved == set(AutoPostPhase) - {Phase.SENDING}
    assert not [move for move in TRANSITIONS if move[0] is Phase.SETTLED]


@pytest.mark.parametrize("move", list(TRANSITIONS), ids=lambda move: f"{move[0]}->{move[1]}")
def test_walk_each_move_of_the_table(move: tuple[AutoPostPhase, AutoPostPhase]) -> None:
    """A step that writes columns lands where the table says; the others end or restart a hold."""
    current, target = move
    if move in COLUMN_STEPS:
        hold = _hold(current)
        assert hold.phase is current
        assert hold.advanced(**COLUMN_STEPS[move]).phase is target
    elif target is Phase.CLAIMED:
        # A claim (new or a takeover) starts from the bare columns: no container, no marker.
        assert current in (Phase.OFFERED, Phase.CLAIMED, Phase.CONTAINER_MADE)
        assert phase_of(QueueStatus.PUBLISHING, **_columns(False, False, False)) is target
    elif target is Phase.OFFERED:
        # Given back (`sent` again, columns cleared): only while no Story id is known,
        # which is also the release statement's own condition.
        assert _hold(current).instagram_media_id is None
        assert phase_of(QueueStatus.SENT, **_columns(False, False, False)) is target
    else:
        assert target is Phase.SETTLED  # a press statement deleted the row


def test_every_column_step_of_the_table_is_walked() -> None:
    forward = {
        move for move in TRANSITIONS if move[1] not in (Phase.CLAIMED, Phase.OFFERED, Phase.SETTLED)
    }
    assert forward == set(COLUMN_STEPS)


@pytest.mark.parametrize(
    ("current", "values"),
    [
        # The marker without a container: a publish request with nothing to publish.
        (Phase.CLAIMED, {"instagram_publish_requested_at": REQUESTED}),
        # A media id before any publish request was marked.
        (Phase.CONTAINER_MADE, {"instagram_media_id": MEDIA}),
        (Phase.CLAIMED, {"instagram_media_id": MEDIA}),
    ],
)
def test_a_hold_refuses_a_step_the_table_does_not_list(
    current: AutoPostPhase, values: dict[str, Any]
) -> None:
    with pytest.raises(ForbiddenTransition):
        _hold(current).advanced(**values)


async def test_a_published_item_is_never_given_back() -> None:
    """Refused before any statement: the holds consult the table, not only the SQL."""
    holds = Holds(sessions=None, lease=autopost_lease(60.0))  # type: ignore[arg-type]

    with pytest.raises(ForbiddenTransition):
        await holds.give_back(_hold(Phase.PUBLISHED))


def test_the_lease_outlasts_the_longest_step() -> None:
    """The wait for the container is the longest step; the lease covers it and a few requests."""
    assert autopost_lease(60.0).total_seconds() == 150.0
    assert autopost_lease(300.0).total_seconds() > 300.0


def test_the_autopost_package_imports_nothing_the_team_sees() -> None:
    """Its captions reach Telegram only through the injected AutoPostBoard."""
    shown = ("bot.captions", "bot.keyboards", "bot.texts", "bot.telegram", "aiogram")
    package = Path(autopost.__file__).parent
    imported = {
        f"{path.name}: {name}"
        for path in package.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        for name in _imported_names(node)
        if name.startswith(shown)
    }
    assert imported == set()


def _imported_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module is not None:
        return [node.module]
    return []
