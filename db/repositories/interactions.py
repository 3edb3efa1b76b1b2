"""user_interactions: the activity log."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import UserInteraction


class InteractionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def log(
        self,
        *,
        kind: str,
        name: str,
        chat_id: int | None,
        user_id: uuid.UUID | None = None,
        context: dict[str, Any] | None = None,
        telegram_message_id: int | None = None,
    ) -> None:
        await self._session.execute(
            insert(UserInteraction).values(
                kind=kind,
                name=name,
                chat_id=chat_id,
                user_id=user_id,
                context=context,
                telegram_message_id=telegram_message_id,
            )
        )
