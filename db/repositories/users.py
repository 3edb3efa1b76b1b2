"""users: upserted on every command or press, never check-then-insert."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert

from db.models import User
from db.repositories.base import Repository

ANONYMOUS_ADMIN = "anonymous admin"
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class TelegramIdentity:
    """Who pressed or typed, as Telegram reported it.

    An anonymous admin wrote as the chat itself (Telegram's GroupAnonymousBot):
    Telegram does not say who, so there is no person to keep a `users` row for;
    `telegram_user_id` is then the chat's id, and only the log records them.
    """

    telegram_user_id: int
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    anonymous_admin: bool = False

    @property
    def display_name(self) -> str:
        if self.anonymous_admin:
            return ANONYMOUS_ADMIN
        full = " ".join(part for part in (self.first_name, self.last_name) if part)
        if full:
            return full
        if self.username:
            return f"@{self.username}"
        return f"user {self.telegram_user_id}"


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
