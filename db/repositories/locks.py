"""media_locks: TTL locks expire; permanent ones (locked_until NULL) stay."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func

from db.models import MediaLock
from db.repositories.base import Repository


class LockRepository(Repository):
    async def delete_expired(self, now: datetime | None = None) -> int:
        moment = now if now is not None else func.now()
        return await self._rows_changed(
            delete(MediaLock).where(
                MediaLock.locked_until.is_not(None), MediaLock.locked_until <= moment
            )
        )
