"""What every repository shares: the caller's session, and the few conditions they all ask."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Executable, func, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute


class Repository:
    """Works in the caller's session and never commits: the service owns the unit of work."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _rows_changed(self, statement: Executable) -> int:
        """Run an UPDATE or DELETE; how many rows it changed."""
        result = await self._session.execute(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]


def lapsed(stamp: InstrumentedAttribute[Any], before: datetime) -> ColumnElement[bool]:
    """A lease nobody holds: its stamp is empty, or older than `before`."""
    return or_(stamp.is_(None), stamp < before)


def lease_ended(expiry: InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """A lease nobody holds, judged on the database's clock: no expiry, or one already past.

    The holder stored its own expiry, so processes with different lease settings
    (or hosts whose clocks disagree) all judge a row the same way.
    """
    return or_(expiry.is_(None), expiry <= func.now())


def lease_until(lease: timedelta) -> ColumnElement[datetime]:
    """The expiry a holder stores: the database's now() plus its lease."""
    return func.now() + lease
