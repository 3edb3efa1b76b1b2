"""media_locks: TTL locks expire; permanent ones (locked_until NULL) stay."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import MediaLock


class LockRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def delete_expired(self, now: datetime | None = None) -> int:
        moment = now if now is not None else func.now()
        result = await self._session.execute(
            delete(MediaLock).where(
                MediaLock.locked_until.is_not(None), MediaLock.locked_until <= moment
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
