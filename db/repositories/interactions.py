"""user_interactions: the activity log."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert

from db.models import UserInteraction
from db.repositories.base import Repository
from db.vocabulary import InteractionKind


class InteractionRepository(Repository):
    async def log(
        self,
        *,
        kind: InteractionKind,
        name: str,
        chat_id: int | None,
        user_id: uuid.UUID | None = None,
        context: dict[str, Any] | None = None,
        telegram_message_id: int | None = None,
        interaction_id: uuid.UUID | None = None,
    ) -> None:
        """Insert one log row; with `interaction_id` (made by the caller) a repeat inserts none."""
        statement = insert(UserInteraction).values(
            kind=kind,
            name=name,
            chat_id=chat_id,
            user_id=user_id,
            context=context,
            telegram_message_id=telegram_message_id,
        )
        if interaction_id is not None:
            statement = statement.values(id=interaction_id).on_conflict_do_nothing(
                index_elements=[UserInteraction.id]
            )
        await self._session.execute(statement)

    async def exists(self, interaction_id: uuid.UUID) -> bool:
        """Whether the row a unit of work logged under `interaction_id` is there (it committed)."""
        statement = select(exists().where(UserInteraction.id == interaction_id))
        return bool((await self._session.execute(statement)).scalar())
