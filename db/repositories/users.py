"""users: upserted on every command or press, never check-then-insert."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Hashable, Mapping
from typing import TypeVar

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert

from bot.domain import TelegramIdentity
from db.models import User
from db.repositories.base import Repository

K = TypeVar("K", bound=Hashable)


def names_told_apart(people: Mapping[K, TelegramIdentity]) -> dict[K, str]:
    """Each person's display name; two of one name (two "Alex") get their @username or id."""
    names = {key: identity.display_name for key, identity in people.items()}
    taken = Counter(names.values())
    for key, identity in people.items():
        if taken[names[key]] > 1:
            handle = (
                f"@{identity.username}" if identity.username else f"id {identity.telegram_user_id}"
            )
            names[key] += f" ({handle})"
    return names


class UserRepository(Repository):
    async def upsert(self, identity: TelegramIdentity) -> uuid.UUID:
        if identity.anonymous_admin:
            raise ValueError("an anonymous admin is not a person: log them without a users row")
        statement = (
            insert(User)
            .values(
                telegram_user_id=identity.telegram_user_id,
                username=identity.username,
                first_name=identity.first_name,
                last_name=identity.last_name,
            )
            .on_conflict_do_update(
                index_elements=[User.telegram_user_id],
                set_={
                    "username": identity.username,
                    "first_name": identity.first_name,
                    "last_name": identity.last_name,
                    "last_seen_at": func.now(),
                },
            )
            .returning(User.id)
        )
        return (await self._session.execute(statement)).scalar_one()
