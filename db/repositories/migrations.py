"""chat_migrations: a group Telegram upgraded to a supergroup, and moving its rows to the new id."""

from __future__ import annotations

from sqlalchemy import Table, delete, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.models import Base, ChatMigration, ChatSettings
from db.repositories.base import Repository

# chat_settings' columns that belong to the row, not to the team's settings.
_OWN_COLUMNS = {"id", "telegram_chat_id", "created_at"}


def _keyed_by_chat() -> list[Table]:
    """Every table with a `chat_id` (the team chat it belongs to), found from the models.

    Found, not listed: a table added later is moved too.
    """
    return [
        table
        for table in Base.metadata.sorted_tables
        if "chat_id" in table.columns and table.name != ChatMigration.__tablename__
    ]


class ChatMigrationRepository(Repository):
    async def moved(self) -> dict[int, int]:
        """Every old chat id and the id it moved to."""
        rows = await self._session.execute(
            select(ChatMigration.old_chat_id, ChatMigration.new_chat_id)
        )
        return {row.old_chat_id: row.new_chat_id for row in rows}

    async def move(self, old_chat_id: int, new_chat_id: int) -> bool:
        """Move the chat's rows to the new id and remember the move; False: already moved.

        The old chat's row is locked first, so a second process waits and then
        finds nothing to move. The new chat's row takes the old one's settings.
        """
        old = await self._session.execute(
            select(ChatSettings.id)
            .where(ChatSettings.telegram_chat_id == old_chat_id)
            .with_for_update()
        )
        found = old.scalar_one_or_none() is not None
        if found:
            await self._move_rows(old_chat_id, new_chat_id)
        # A chat that moved before, to the old id, now leads to the new one.
        await self._session.execute(
            update(ChatMigration)
            .where(ChatMigration.new_chat_id == old_chat_id)
            .values(new_chat_id=new_chat_id)
        )
        await self._session.execute(
            pg_insert(ChatMigration)
            .values(old_chat_id=old_chat_id, new_chat_id=new_chat_id)
            .on_conflict_do_nothing(index_elements=[ChatMigration.old_chat_id])
        )
        return found

    async def _move_rows(self, old_chat_id: int, new_chat_id: int) -> None:
        table = ChatSettings.__table__
        assert isinstance(table, Table)
        copied = [column.name for column in table.columns if column.name not in _OWN_COLUMNS]
        source = select(literal(new_chat_id), *(table.c[name] for name in copied)).where(
            table.c.telegram_chat_id == old_chat_id
        )
        statement = pg_insert(table).from_select(["telegram_chat_id", *copied], source)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.telegram_chat_id],
            set_={name: statement.excluded[name] for name in copied}
            | {
                # A topic the new chat already has (configured for it) is kept.
                "message_thread_id": func.coalesce(
                    statement.excluded.message_thread_id, table.c.message_thread_id
                ),
                "updated_at": func.now(),
            },
        )
        await self._session.execute(statement)
        for keyed in _keyed_by_chat():
            column = keyed.c.chat_id
            if column.primary_key:
                # One row per chat (the Instagram account): the new chat's own wins.
                taken = exists().where(column == new_chat_id)
                await self._session.execute(
                    update(keyed).where(column == old_chat_id, ~taken).values(chat_id=new_chat_id)
                )
                await self._session.execute(delete(keyed).where(column == old_chat_id))
            else:
                await self._session.execute(
                    update(keyed).where(column == old_chat_id).values(chat_id=new_chat_id)
                )
        await self._session.execute(delete(table).where(table.c.telegram_chat_id == old_chat_id))

    async def claim_notice(self, old_chat_id: int) -> bool:
        """Mark the team's notice as sent before it is sent; False: someone already did."""
        result = await self._session.execute(
            update(ChatMigration)
            .where(ChatMigration.old_chat_id == old_chat_id, ChatMigration.team_told_at.is_(None))
            .values(team_told_at=func.now())
            .returning(ChatMigration.old_chat_id)
        )
        return result.scalar_one_or_none() is not None


__all__ = ["ChatMigrationRepository"]
