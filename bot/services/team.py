"""What the team commands read and change; one transaction per action."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import structlog
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.slots import PostingSchedule
from db.models import ChatSettings, MediaItem, PostingHistory, PostingQueueItem, User
from db.repositories import (
    ChatSettingsRepository,
    HistoryRepository,
    InteractionRepository,
    MediaRepository,
    QueueRepository,
    TelegramIdentity,
    UserRepository,
)
from db.retry import Idempotent, Reread, in_transaction

logger = structlog.get_logger(__name__)
T = TypeVar("T")
READ_ONLY = Idempotent("it only reads, or upserts the chat's row with ON CONFLICT")


class SettingRejectedError(Exception):
    """A settings change that is out of range or unknown; the message says why."""


@dataclass(frozen=True, slots=True)
class StatusView:
    chat: ChatSettings
    paused_by: str | None
    in_flight: int
    next_slot: datetime | None
    last_post: PostingHistory | None
    last_post_file: str | None
    library: int
    eligible: int


@dataclass(frozen=True, slots=True)
class PersonStats:
    name: str
    week: tuple[int, int, int]
    month: tuple[int, int, int]
    total: tuple[int, int, int]


# field -> (column, lowest, highest)
STEPPERS: dict[str, tuple[str, int, int]] = {
    "ppd": ("posts_per_day", 1, 50),
    "start": ("posting_hours_start", 0, 23),
    "end": ("posting_hours_end", 0, 23),
}
TOGGLES = {"pause": "is_paused", "dry": "dry_run"}


def valid_timezone(name: str) -> bool:
    if name not in available_timezones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


class TeamService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def _run(
        self,
        operation: str,
        work: Callable[[AsyncSession], Awaitable[T]],
        repeat: Idempotent | Reread[T] = READ_ONLY,
    ) -> T:
        """`work` in one transaction, through the retry wrapper."""
        return await in_transaction(self._sessions, work, repeat=repeat, operation=operation)

    async def touch(
        self,
        chat_id: int | None,
        identity: TelegramIdentity,
        kind: str,
        name: str,
        context: dict[str, Any] | None = None,
        message_id: int | None = None,
    ) -> None:
        """Upsert the user and log the interaction, in a short transaction of their own."""

        async def work(session: AsyncSession) -> None:
            user_id = await UserRepository(session).upsert(identity)
            await InteractionRepository(session).log(
                kind=kind,
                name=name,
                chat_id=chat_id,
                user_id=user_id,
                context=context,
                telegram_message_id=message_id,
            )

        await self._run(
            "team.touch", work, Idempotent("TODO(#11): a repeat logs the interaction twice")
        )

    async def register_chat(self, chat_id: int, title: str | None) -> None:
        async def work(session: AsyncSession) -> None:
            await ChatSettingsRepository(session).ensure(chat_id, title)

        await self._run("team.register", work)

    async def chat(self, chat_id: int) -> ChatSettings:
        async def work(session: AsyncSession) -> ChatSettings:
            return await ChatSettingsRepository(session).ensure(chat_id)

        return await self._run("team.chat", work)

    async def status(self, chat_id: int, now: datetime) -> StatusView:
        async def work(session: AsyncSession) -> StatusView:
            chat = await ChatSettingsRepository(session).ensure(chat_id)
            paused_by = None
            if chat.paused_by_user_id is not None:
                user = await session.get(User, chat.paused_by_user_id)
                paused_by = _name_of(user)
            media = MediaRepository(session)
            total, _ = await media.library_counts(chat_id)
            eligible = await media.count_eligible(chat_id, now)
            in_flight = len(await QueueRepository(session).in_flight(chat_id))
            history = HistoryRepository(session)
            last = await history.last_posted(chat_id)
            last_file = None
            if last is not None:
                item = await media.get(last.media_item_id)
                last_file = item.file_name if item else None
            upcoming = None
            if not chat.is_paused:
                upcoming = PostingSchedule.of(chat).next_slot(now, chat.last_post_sent_at)
            return StatusView(
                chat=chat,
                paused_by=paused_by,
                in_flight=in_flight,
                next_slot=upcoming,
                last_post=last,
                last_post_file=last_file,
                library=total,
                eligible=eligible,
            )

        return await self._run("team.status", work)

    async def in_flight(self, chat_id: int) -> list[tuple[PostingQueueItem, MediaItem]]:
        async def work(session: AsyncSession) -> list[tuple[PostingQueueItem, MediaItem]]:
            return await QueueRepository(session).in_flight(chat_id)

        return await self._run("team.queue", work)

    async def history(self, chat_id: int, limit: int) -> list[tuple[PostingHistory, MediaItem]]:
        async def work(session: AsyncSession) -> list[tuple[PostingHistory, MediaItem]]:
            return await HistoryRepository(session).recent(chat_id, limit)

        return await self._run("team.history", work)

    async def stats(self, chat_id: int, now: datetime) -> list[PersonStats]:
        async def work(session: AsyncSession) -> list[PersonStats]:
            history = HistoryRepository(session)
            week = await history.per_person(chat_id, now - timedelta(days=7))
            month = await history.per_person(chat_id, now - timedelta(days=30))
            total = await history.per_person(chat_id, None)
            by_week = {row[0]: row[1:] for row in week}
            by_month = {row[0]: row[1:] for row in month}
            return [
                PersonStats(
                    name=row[0] or "someone",
                    week=by_week.get(row[0], (0, 0, 0)),
                    month=by_month.get(row[0], (0, 0, 0)),
                    total=row[1:],
                )
                for row in total
            ]

        return await self._run("team.stats", work)

    async def set_paused(self, chat_id: int, identity: TelegramIdentity, paused: bool) -> bool:
        """Pause or resume; False when it already was. Records who and when."""

        async def work(session: AsyncSession) -> bool:
            chats = ChatSettingsRepository(session)
            chat = await chats.get_for_update(chat_id, skip_locked=False)
            if chat is None:
                chat = await chats.ensure(chat_id)
            if chat.is_paused == paused:
                return False
            user_id = await UserRepository(session).upsert(identity)
            if paused:
                await chats.update(
                    chat_id, is_paused=True, paused_at=func.now(), paused_by_user_id=user_id
                )
            else:
                await chats.update(chat_id, is_paused=False, paused_at=None, paused_by_user_id=None)
            await InteractionRepository(session).log(
                kind="command",
                name="settings.change",
                chat_id=chat_id,
                user_id=user_id,
                context={"field": "is_paused", "old": not paused, "new": paused},
            )
            return True

        return await self._run(
            "team.pause",
            work,
            Idempotent("TODO(#11): a repeat after a landed COMMIT says 'already'"),
        )

    async def change_setting(
        self, chat_id: int, identity: TelegramIdentity, field: str, value: Any
    ) -> ChatSettings:
        """Apply one settings change (a toggle, a step of ±1, or a timezone) and log it."""

        async def work(session: AsyncSession) -> ChatSettings:
            chats = ChatSettingsRepository(session)
            chat = await chats.get_for_update(chat_id, skip_locked=False)
            if chat is None:
                chat = await chats.ensure(chat_id)
            column, new = _resolve(chat, field, value)
            old = getattr(chat, column)
            user_id = await UserRepository(session).upsert(identity)
            changes: dict[str, Any] = {column: new}
            if column == "is_paused":
                changes.update(
                    paused_at=func.now() if new else None,
                    paused_by_user_id=user_id if new else None,
                )
            await chats.update(chat_id, **changes)
            await InteractionRepository(session).log(
                kind="command",
                name="settings.change",
                chat_id=chat_id,
                user_id=user_id,
                context={"field": column, "old": old, "new": new},
            )
            await session.refresh(chat)
            return chat

        return await self._run(
            "team.settings", work, Idempotent("TODO(#11): a repeated toggle or step applies twice")
        )


def _resolve(chat: ChatSettings, field: str, value: Any) -> tuple[str, Any]:
    if field == "tz":
        if not isinstance(value, str) or not valid_timezone(value):
            raise SettingRejectedError(
                f"Unknown timezone “{value}”. Use an IANA name such as Europe/Berlin."
            )
        return "timezone", value
    if field in TOGGLES:
        column = TOGGLES[field]
        return column, not getattr(chat, column)
    if field in STEPPERS:
        column, lowest, highest = STEPPERS[field]
        if value not in (-1, 1):
            raise SettingRejectedError("That button is out of date.")
        current = getattr(chat, column)
        if column == "posts_per_day":
            new = current + value
            if not lowest <= new <= highest:
                raise SettingRejectedError(
                    f"Posts per day must stay between {lowest} and {highest}."
                )
        else:
            new = (current + value) % 24  # hours wrap around midnight
        return column, new
    raise SettingRejectedError("That button is out of date.")


def _name_of(user: User | None) -> str | None:
    if user is None:
        return None
    return TelegramIdentity(
        user.telegram_user_id, user.username, user.first_name, user.last_name
    ).display_name
