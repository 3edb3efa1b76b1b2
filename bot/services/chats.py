"""Which chats this process serves, and following a group Telegram upgraded to a supergroup.

Telegram gives an upgraded group a new id (docs/architecture.md §9). The chat's
rows move to the new id in one transaction, the move is remembered in
`chat_migrations`, and the new id is served until the configuration names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.notices import TeamNotices
from db.repositories import ChatMigrationRepository, ChatSettingsRepository
from db.retry import in_idempotent_transaction

logger = structlog.get_logger(__name__)


@dataclass(eq=False)
class ChatDirectory:
    """The configured chats, each followed to where Telegram moved it."""

    sessions: async_sessionmaker[AsyncSession]
    configured: tuple[int, ...]
    # old chat id -> new chat id, as stored in chat_migrations.
    moved: dict[int, int] = field(default_factory=dict)
    # Told of each move, so what is kept per chat in memory follows it (Instagram accounts).
    on_move: list[Callable[[int, int], None]] = field(default_factory=list)
    # Renders the team's notice of a move; only a directory that follows moves needs it
    # (the doctor and the indexer only read them).
    notices: TeamNotices | None = None

    def _remember(self, old_chat_id: int, new_chat_id: int) -> None:
        self.moved[old_chat_id] = new_chat_id
        for listener in self.on_move:
            listener(old_chat_id, new_chat_id)

    def resolve(self, chat_id: int) -> int:
        """Where `chat_id` lives now (itself, unless Telegram moved it)."""
        seen = {chat_id}
        while chat_id in self.moved and self.moved[chat_id] not in seen:
            chat_id = self.moved[chat_id]
            seen.add(chat_id)
        return chat_id

    def served(self) -> tuple[int, ...]:
        """Every chat this process serves now, in the configured order."""
        return tuple(dict.fromkeys(self.resolve(chat_id) for chat_id in self.configured))

    def serves(self, chat_id: int) -> bool:
        return chat_id in self.served()

    def leads_here(self, chat_id: int) -> bool:
        """Served, or a group Telegram upgraded to a served supergroup (its history's buttons)."""
        return self.serves(self.resolve(chat_id))

    def outdated(self) -> dict[int, int]:
        """Configured ids Telegram moved: old id -> the id the configuration should name."""
        return {
            chat_id: self.resolve(chat_id)
            for chat_id in self.configured
            if self.resolve(chat_id) != chat_id
        }

    async def refresh(self) -> None:
        """Learn the moves stored since (another process may have followed an upgrade)."""

        async def read(session: AsyncSession) -> dict[int, int]:
            return await ChatMigrationRepository(session).moved()

        for old, new in (
            await in_idempotent_transaction(
                self.sessions, read, operation="chats.load", because="it only reads"
            )
        ).items():
            if self.moved.get(old) != new:
                self._remember(old, new)

    async def load(self) -> None:
        """Read the stored moves; warn about every configured id that moved (each start)."""
        await self.refresh()
        for old, new in self.outdated().items():
            logger.warning(
                "chat.config_outdated",
                old_chat_id=old,
                new_chat_id=new,
                hint=f"Telegram upgraded the group: set TELEGRAM_CHAT_ID to {new} instead of {old}",
            )

    async def follow(self, old_chat_id: int, new_chat_id: int, bot: Bot) -> int | None:
        """Move the chat's rows to its new id (once, whoever asks), then tell the team once.

        Returns the new chat's queue topic.
        """
        if self.notices is None:
            # Refused before anything moves: a move nobody is told of would be a silent one.
            raise RuntimeError("ChatDirectory.follow needs notices to tell the team")
        notices = self.notices

        async def move(session: AsyncSession) -> bool:
            return await ChatMigrationRepository(session).move(old_chat_id, new_chat_id)

        moved_now = await in_idempotent_transaction(
            self.sessions,
            move,
            operation="chats.follow_migration",
            because="rows already moved are found under the new id; the mapping insert conflicts",
        )
        self._remember(old_chat_id, new_chat_id)
        if moved_now:
            logger.warning(
                "chat.migrated",
                old_chat_id=old_chat_id,
                new_chat_id=new_chat_id,
                hint=self._hint(),
            )
        return await self._tell_team(old_chat_id, new_chat_id, bot, notices)

    def _hint(self) -> str:
        return "set TELEGRAM_CHAT_ID=" + ",".join(str(chat_id) for chat_id in self.served())

    async def _tell_team(
        self, old_chat_id: int, new_chat_id: int, bot: Bot, notices: TeamNotices
    ) -> int | None:
        """The team's notice, once; the new chat's queue topic."""

        async def claim(session: AsyncSession) -> bool:
            return await ChatMigrationRepository(session).claim_notice(old_chat_id)

        topic = await self._topic(new_chat_id)
        # Marked before it is sent: a lost answer or a second process never repeats it.
        if not await in_idempotent_transaction(
            self.sessions,
            claim,
            operation="chats.claim_notice",
            because="it sets team_told_at once",
        ):
            return topic
        try:
            await bot.send_message(
                new_chat_id,
                notices.chat_migrated(old_chat_id, new_chat_id),
                message_thread_id=topic,
            )
        except TelegramAPIError as error:
            logger.warning("chat.migration_notice_failed", chat_id=new_chat_id, error=str(error))
        return topic

    async def _topic(self, chat_id: int) -> int | None:
        async def read(session: AsyncSession) -> int | None:
            return await ChatSettingsRepository(session).topic_of(chat_id)

        return await in_idempotent_transaction(
            self.sessions, read, operation="chats.topic", because="it reads"
        )

    def known(self, chat_ids: Iterable[int]) -> bool:
        """Is any of these chats one this process serves or served before a move?"""
        return any(
            chat_id in self.configured or chat_id in self.moved or self.serves(chat_id)
            for chat_id in chat_ids
        )
