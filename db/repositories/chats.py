"""chat_settings: one row per team chat, created on first contact."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, func, select, update
from sqlalchemy.dialects.postgresql import insert

from db.models import ChatMigration, ChatSettings, MediaItem
from db.repositories.base import Repository, rows_table


class ChatSettingsRepository(Repository):
    async def ensure(self, telegram_chat_id: int, title: str | None = None) -> ChatSettings:
        """Create the chat's row if it is missing and return it (title refreshed when given)."""
        statement = insert(ChatSettings).values(telegram_chat_id=telegram_chat_id, title=title)
        if title is None:
            statement = statement.on_conflict_do_nothing(
                index_elements=[ChatSettings.telegram_chat_id]
            )
        else:
            statement = statement.on_conflict_do_update(
                index_elements=[ChatSettings.telegram_chat_id],
                set_={"title": title, "updated_at": func.now()},
            )
        await self._session.execute(statement)
        found = await self.get(telegram_chat_id)
        assert found is not None
        return found

    async def default_topic(self, telegram_chat_id: int, topic: int) -> None:
        """The configured topic, unless the team already chose one."""
        await self._session.execute(
            update(ChatSettings)
            .where(
                ChatSettings.telegram_chat_id == telegram_chat_id,
                ChatSettings.message_thread_id.is_(None),
            )
            .values(message_thread_id=topic, updated_at=func.now())
        )

    async def topic_of(self, telegram_chat_id: int) -> int | None:
        """The forum topic the chat's queue lives in (None: General)."""
        statement = select(ChatSettings.message_thread_id).where(
            ChatSettings.telegram_chat_id == telegram_chat_id
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def get(self, telegram_chat_id: int) -> ChatSettings | None:
        statement = select(ChatSettings).where(ChatSettings.telegram_chat_id == telegram_chat_id)
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def get_for_update(
        self, telegram_chat_id: int, *, skip_locked: bool
    ) -> ChatSettings | None:
        statement = (
            select(ChatSettings)
            .where(ChatSettings.telegram_chat_id == telegram_chat_id)
            .with_for_update(skip_locked=skip_locked)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def lock_many(self, telegram_chat_ids: list[int]) -> list[ChatSettings]:
        """Lock the chats' rows for a claim; a row another process holds is skipped."""
        statement = (
            select(ChatSettings)
            .where(ChatSettings.telegram_chat_id.in_(telegram_chat_ids))
            .order_by(ChatSettings.telegram_chat_id)
            .with_for_update(skip_locked=True)
        )
        return list((await self._session.execute(statement)).scalars())

    async def active_chat_ids(self) -> list[int]:
        statement = select(ChatSettings.telegram_chat_id).where(ChatSettings.is_paused.is_(False))
        return list((await self._session.execute(statement)).scalars())

    async def schedules_of_active(self, among: Sequence[int] | None = None) -> list[ChatSettings]:
        """Every running chat with an active library (of `among`, when given), in one query."""
        has_media = (
            select(MediaItem.id)
            .where(MediaItem.chat_id == ChatSettings.telegram_chat_id, MediaItem.is_active)
            .exists()
        )
        statement = select(ChatSettings).where(ChatSettings.is_paused.is_(False), has_media)
        if among is not None:
            # A listed group Telegram upgraded (maybe seen by another process) is its
            # supergroup now.
            moved_to = select(ChatMigration.new_chat_id).where(
                ChatMigration.old_chat_id.in_(list(among))
            )
            statement = statement.where(
                ChatSettings.telegram_chat_id.in_(list(among))
                | ChatSettings.telegram_chat_id.in_(moved_to)
            )
        return list((await self._session.execute(statement)).scalars())

    async def fill_slots(self, slots: dict[int, datetime]) -> None:
        """Set each chat's last filled slot, for many chats in one statement."""
        if not slots:
            return
        filled = rows_table(
            "filled",
            [("chat_id", BigInteger()), ("slot", DateTime(timezone=True))],
            list(slots.items()),
        )
        statement = (
            update(ChatSettings)
            .where(ChatSettings.telegram_chat_id == filled.c.chat_id)
            .values(last_post_sent_at=filled.c.slot, updated_at=func.now())
        )
        await self._session.execute(statement)

    async def update(self, telegram_chat_id: int, **values: Any) -> None:
        statement = (
            update(ChatSettings)
            .where(ChatSettings.telegram_chat_id == telegram_chat_id)
            .values(**values, updated_at=func.now())
        )
        await self._session.execute(statement)

    async def mark_runway_warned(self, telegram_chat_id: int, at: datetime) -> int | None:
        """Record the runway warning unless one is; this transaction's id when it did.

        The id tells a lost COMMIT reply apart: `committed` asks whether that
        transaction landed, where comparing the stamp could not tell our mark
        from another process's made at the same instant.
        """
        statement = (
            update(ChatSettings)
            .where(
                ChatSettings.telegram_chat_id == telegram_chat_id,
                ChatSettings.runway_warned_at.is_(None),
            )
            .values(runway_warned_at=at)
            .returning(func.txid_current())
        )
        transaction: int | None = (await self._session.execute(statement)).scalar_one_or_none()
        return transaction

    async def clear_runway_warned(self, telegram_chat_id: int, marked_at: datetime) -> None:
        """Forget the warning recorded at `marked_at` (a later one stays)."""
        await self._session.execute(
            update(ChatSettings)
            .where(
                ChatSettings.telegram_chat_id == telegram_chat_id,
                ChatSettings.runway_warned_at == marked_at,
            )
            .values(runway_warned_at=None)
        )

    async def committed(self, transaction: int) -> bool:
        """Did this transaction (from `mark_runway_warned`) commit?"""
        status = await self._session.scalar(select(func.txid_status(transaction)))
        return status == "committed"
