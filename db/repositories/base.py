"""What every repository shares: the caller's session, and the few conditions they all ask."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import ColumnElement, Executable, TableValuedAlias, bindparam, column, func, or_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import TypeEngine

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


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


def rows_table(
    name: str, columns: Sequence[tuple[str, TypeEngine[Any]]], rows: Sequence[Sequence[Any]]
) -> TableValuedAlias:
    """`rows` as a table for one statement, one array parameter per column, unnested.

    A VALUES list is compiled anew for every number of rows; this statement's SQL
    is the same for any number, so SQLAlchemy compiles it once (a tick with every
    chat due spent a quarter of its Python time compiling VALUES lists).
    """
    arrays = [
        bindparam(f"{name}_{column_name}", [row[index] for row in rows], type_=ARRAY(type_))
        for index, (column_name, type_) in enumerate(columns)
    ]
    typed = [column(column_name, type_) for column_name, type_ in columns]
    return func.unnest(*arrays).table_valued(*typed).render_derived(name=name)


def copied(cls: type[D], row: object, **given: Any) -> D:
    """A `cls` dataclass whose fields are `row`'s attributes of the same names, or `given`."""
    values = {
        field.name: given[field.name] if field.name in given else getattr(row, field.name)
        for field in dataclasses.fields(cls)
    }
    return cls(**values)
