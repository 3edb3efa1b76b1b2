"""user_interactions: the activity log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert

from db.models import UserInteraction
from db.repositories.base import Repository
from db.vocabulary import InteractionKind


@dataclass(frozen=True, slots=True)
class Interaction:
    """One activity-log entry: what was done, where; who did it is the caller's user row."""

    kind: InteractionKind
    name: str
    chat_id: int | None
    context: dict[str, Any] | None = None
    telegram_message_id: int | None = None


class InteractionRepository(Repository):
    async def log(
        self, entry: Interaction, *, user_id: uuid.UUID | None, interaction_id: uuid.UUID
    ) -> None:
        """Insert one log row under `interaction_id` (made by the caller): a repeat inserts none."""
        statement = (
            insert(UserInteraction)
            .values(id=interaction_id, user_id=user_id, **_columns(entry))
            .on_conflict_do_nothing(index_elements=[UserInteraction.id])
        )
        await self._session.execute(statement)

    async def last_change_actor(self, chat_id: int, column: str) -> str | None:
        """The `actor` recorded with the latest change of a chat setting (an anonymous admin)."""
        statement = (
            select(UserInteraction.context["actor"].astext)
            .where(
                UserInteraction.chat_id == chat_id,
                UserInteraction.name == "settings.change",
                UserInteraction.context["field"].astext == column,
            )
            .order_by(UserInteraction.created_at.desc())
            .limit(1)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def exists(self, interaction_id: uuid.UUID) -> bool:
        """Whether the row a unit of work logged under `interaction_id` is there (it committed)."""
        statement = select(exists().where(UserInteraction.id == interaction_id))
        return bool((await self._session.execute(statement)).scalar())


def _columns(entry: Interaction) -> dict[str, Any]:
    return {field.name: getattr(entry, field.name) for field in fields(entry)}
