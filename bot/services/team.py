"""What the team commands read and change; one transaction per action."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import structlog
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain import ANONYMOUS_ADMIN, TelegramIdentity
from bot.services.chart import HeatMap, activity_chart
from bot.services.runway import Runway, read_runway
from bot.services.slots import PostingSchedule
from db.models import PostingHistory, PostingQueueItem, User
from db.repositories import (
    ChatSettingsRepository,
    HistoryRepository,
    Interaction,
    InteractionRepository,
    MediaRepository,
    QueueRepository,
    UserRepository,
)
from db.repositories.base import copied
from db.repositories.stats import (
    EXPORT_COLUMNS,
    CategoryRow,
    HourCell,
    NamedItems,
    PersonRow,
    StatsRepository,
)
from db.repositories.users import names_told_apart
from db.retry import Idempotent, Reread, in_transaction
from db.vocabulary import (
    SETTING_RANGES,
    Framing,
    HistoryStatus,
    InteractionKind,
    PostingMethod,
    QueueStatus,
)

logger = structlog.get_logger(__name__)
T = TypeVar("T")
READ_ONLY = Idempotent("it only reads, or upserts the chat's row with ON CONFLICT")


class SettingRejectedError(Exception):
    """A settings change that is out of range or unknown: which column, the value and the range.

    `column` None: no setting takes that button (an out-of-date message).
    """

    def __init__(
        self,
        column: str | None,
        value: object = None,
        lowest: int | None = None,
        highest: int | None = None,
    ) -> None:
        super().__init__(f"{column or 'unknown setting'} refuses {value!r}")
        self.column = column
        self.value = value
        self.lowest = lowest
        self.highest = highest


@dataclass(frozen=True, slots=True)
class ChatView:
    """A chat's settings, copied out of its row for the texts and keyboards."""

    telegram_chat_id: int
    is_paused: bool
    paused_at: datetime | None
    dry_run: bool
    posts_per_day: int
    posting_hours_start: int
    posting_hours_end: int
    timezone: str
    message_thread_id: int | None
    sent_ttl_days: int
    runway_warning_days: int
    photo_framing: str


@dataclass(frozen=True, slots=True)
class FileView:
    """A library item as the team sees it."""

    id: uuid.UUID
    file_name: str
    file_path: str
    set_aside_reason: str | None = None
    # Why Instagram would refuse it (index's verdict): manual only, no 🤖.
    autopost_refusal: str | None = None


@dataclass(frozen=True, slots=True)
class QueuedView:
    """An item in flight (/queue)."""

    id: uuid.UUID
    status: QueueStatus
    created_at: datetime
    telegram_message_id: int | None = None

    @property
    def arrived(self) -> bool:
        """In the chat with its buttons, so an admin may drop or resend it."""
        return self.status is QueueStatus.SENT

    @classmethod
    def of(cls, item: PostingQueueItem) -> QueuedView:
        return copied(cls, item, status=QueueStatus(item.status))


@dataclass(frozen=True, slots=True)
class DecisionView:
    """How an item left the queue, and who decided (/history, /status)."""

    status: HistoryStatus
    acted_by_name: str | None
    acted_at: datetime
    posting_method: PostingMethod | None = None

    @classmethod
    def of(cls, entry: PostingHistory) -> DecisionView:
        method = None if entry.posting_method is None else PostingMethod(entry.posting_method)
        return copied(cls, entry, status=HistoryStatus(entry.status), posting_method=method)


@dataclass(frozen=True, slots=True)
class StatusView:
    chat: ChatView
    paused_by: str | None
    in_flight: int
    next_slot: datetime | None
    last_post: DecisionView | None
    last_post_file: str | None
    library: int
    eligible: int
    set_aside: int = 0
    runway: Runway | None = None


@dataclass(frozen=True, slots=True)
class PersonStats:
    name: str
    week: tuple[int, int, int]
    month: tuple[int, int, int]
    total: tuple[int, int, int]
    decisions: int = 0  # within the /stats period
    median_seconds: float | None = None  # from an item's arrival to this person's decision


@dataclass(frozen=True, slots=True)
class StatsView:
    """What /stats shows for a period of `days`."""

    days: int
    timezone: str
    people: list[PersonStats]
    categories: list[CategoryRow]
    reach_by_hour: list[HourCell]  # weekday × hour of the kept Story results
    posts_by_hour: list[HourCell]
    never_sent: NamedItems
    skipped_often: NamedItems


SKIPPED_OFTEN = 3  # skips after which an item is listed
ITEMS_SHOWN = 5  # names listed per item list in /stats


# A button carries the value it sets. field -> column; its range is in SETTING_RANGES.
NUMBERS: dict[str, str] = {
    "ppd": "posts_per_day",
    "start": "posting_hours_start",
    "end": "posting_hours_end",
    "sentttl": "sent_ttl_days",
    "runway": "runway_warning_days",
}
SWITCHES = {"pause": "is_paused", "dry": "dry_run"}  # value 1 = on, 0 = off


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

    async def touch(self, identity: TelegramIdentity, entry: Interaction) -> None:
        """Upsert the user and log the interaction, in a short transaction of their own."""
        interaction_id = uuid.uuid4()

        async def work(session: AsyncSession) -> None:
            await _log_as(session, identity, entry, interaction_id)

        await self._run(
            "team.touch",
            work,
            Idempotent("the log row's id is made here: a repeat conflicts on it and adds none"),
        )

    async def register_chat(
        self, chat_id: int, title: str | None, *, topic: int | None = None
    ) -> None:
        """The chat's row; a configured topic is where its queue starts out (/settings moves it)."""

        async def work(session: AsyncSession) -> None:
            chats = ChatSettingsRepository(session)
            await chats.ensure(chat_id, title)
            if topic is not None:
                await chats.default_topic(chat_id, topic)

        await self._run("team.register", work)

    async def chat(self, chat_id: int) -> ChatView:
        async def work(session: AsyncSession) -> ChatView:
            return copied(ChatView, await ChatSettingsRepository(session).ensure(chat_id))

        return await self._run("team.chat", work)

    async def status(self, chat_id: int, now: datetime) -> StatusView:
        async def work(session: AsyncSession) -> StatusView:
            chat = await ChatSettingsRepository(session).ensure(chat_id)
            paused_by = None
            if chat.paused_by_user_id is not None:
                user = await session.get(User, chat.paused_by_user_id)
                paused_by = _name_of(user)
            elif chat.is_paused:
                # No user: an anonymous admin paused it, as the change's log entry says.
                paused_by = await InteractionRepository(session).last_change_actor(
                    chat_id, "is_paused"
                )
            media = MediaRepository(session)
            total, _ = await media.library_counts(chat_id)
            eligible = await media.count_eligible(chat_id, now)
            set_aside = len(await media.set_aside_items(chat_id))
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
            runway = await read_runway(session, chat, now)
            return StatusView(
                runway=runway,
                chat=copied(ChatView, chat),
                paused_by=paused_by,
                in_flight=in_flight,
                next_slot=upcoming,
                last_post=None if last is None else DecisionView.of(last),
                last_post_file=last_file,
                library=total,
                eligible=eligible,
                set_aside=set_aside,
            )

        return await self._run("team.status", work)

    async def in_flight(self, chat_id: int) -> list[tuple[QueuedView, FileView]]:
        async def work(session: AsyncSession) -> list[tuple[QueuedView, FileView]]:
            rows = await QueueRepository(session).in_flight(chat_id)
            return [(QueuedView.of(item), copied(FileView, media)) for item, media in rows]

        return await self._run("team.queue", work)

    async def history(self, chat_id: int, limit: int) -> list[tuple[DecisionView, FileView]]:
        async def work(session: AsyncSession) -> list[tuple[DecisionView, FileView]]:
            rows = await HistoryRepository(session).recent(chat_id, limit)
            return [(DecisionView.of(entry), copied(FileView, media)) for entry, media in rows]

        return await self._run("team.history", work)

    async def stats(self, chat_id: int, now: datetime, days: int = 30) -> StatsView:
        """People keyed by their user row (two "Alex" stay two; a rename keeps the counts)."""

        async def work(session: AsyncSession) -> StatsView:
            chat = await ChatSettingsRepository(session).ensure(chat_id)
            stats = StatsRepository(session)
            since = now - timedelta(days=days)
            people = await stats.people(
                chat_id,
                week=now - timedelta(days=7),
                month=now - timedelta(days=30),
                since=since,
            )
            return StatsView(
                days=days,
                timezone=chat.timezone,
                people=_told_apart([_person_stats(row) for row in people], people),
                categories=await stats.categories(chat_id, since),
                reach_by_hour=await stats.reach_by_hour(chat_id, since, chat.timezone),
                posts_by_hour=await stats.posts_by_hour(chat_id, since, chat.timezone),
                never_sent=await stats.never_sent(chat_id, ITEMS_SHOWN),
                skipped_often=await stats.skipped_often(chat_id, SKIPPED_OFTEN, ITEMS_SHOWN),
            )

        return await self._run("team.stats", work)

    async def chart(self, chat_id: int, now: datetime, heat: HeatMap | None = None) -> bytes | None:
        """The /stats picture: the chat's last four weeks; None when nobody pressed."""
        return await activity_chart(self._sessions, chat_id, now, heat)

    async def set_aside_items(self, chat_id: int) -> list[FileView]:
        async def work(session: AsyncSession) -> list[FileView]:
            return [
                copied(FileView, item)
                for item in await MediaRepository(session).set_aside_items(chat_id)
            ]

        return await self._run("team.set_aside", work)

    async def put_back(self, chat_id: int, identity: TelegramIdentity, media_id: uuid.UUID) -> bool:
        """Make a set-aside item selectable again; False when it already was (a double tap)."""
        change_id = uuid.uuid4()

        async def work(session: AsyncSession) -> bool:
            if not await MediaRepository(session).put_back(media_id, chat_id):
                return False
            change = Interaction(
                InteractionKind.CALLBACK,
                "media.put_back",
                chat_id,
                context={"media_item_id": str(media_id)},
            )
            await _log_as(session, identity, change, change_id)
            return True

        async def recover(session: AsyncSession) -> bool | None:
            # Logged under change_id: our COMMIT landed unheard, and it was us who put it back.
            return True if await InteractionRepository(session).exists(change_id) else None

        return await self._run("team.put_back", work, Reread(recover))

    async def export(self, chat_id: int) -> tuple[tuple[str, ...], list[Sequence[Any]]]:
        """The chat's history with its kept Story results: the columns and the rows."""

        async def work(session: AsyncSession) -> list[Sequence[Any]]:
            return await StatsRepository(session).export_rows(chat_id)

        return EXPORT_COLUMNS, await self._run("team.export", work)

    async def set_paused(self, chat_id: int, identity: TelegramIdentity, paused: bool) -> bool:
        """Pause or resume; False when it already was. Records who and when."""
        _, changed = await self._set(chat_id, identity, "is_paused", paused, "team.pause")
        return changed

    async def change_setting(
        self, chat_id: int, identity: TelegramIdentity, field: str, value: Any
    ) -> tuple[ChatView, bool]:
        """Set one setting to `value` (a button's target or a timezone); False: it already was."""
        column, new = _resolve(field, value)
        return await self._set(chat_id, identity, column, new, "team.settings")

    async def _set(
        self,
        chat_id: int,
        identity: TelegramIdentity,
        column: str,
        new: Any,
        operation: str,
    ) -> tuple[ChatView, bool]:
        """SET the column (never toggle or step) and log the change once, under our own id."""
        change_id = uuid.uuid4()

        async def work(session: AsyncSession) -> tuple[ChatView, bool]:
            chats = ChatSettingsRepository(session)
            chat = await chats.get_for_update(chat_id, skip_locked=False)
            if chat is None:
                await chats.ensure(chat_id)
                chat = await chats.get_for_update(chat_id, skip_locked=False)
                assert chat is not None
            old = getattr(chat, column)
            if old == new:
                return copied(ChatView, chat), False
            change = Interaction(
                InteractionKind.COMMAND,
                "settings.change",
                chat_id,
                context={"field": column, "old": old, "new": new},
            )
            user_id = await _log_as(session, identity, change, change_id)
            changes: dict[str, Any] = {column: new}
            if column == "is_paused":
                changes.update(
                    paused_at=func.now() if new else None,
                    paused_by_user_id=user_id if new else None,
                )
            await chats.update(chat_id, **changes)
            await session.refresh(chat)
            return copied(ChatView, chat), True

        async def recover(session: AsyncSession) -> tuple[ChatView, bool] | None:
            # Our change logged under change_id means its COMMIT landed unheard.
            if not await InteractionRepository(session).exists(change_id):
                return None
            chat = await ChatSettingsRepository(session).get(chat_id)
            return None if chat is None else (copied(ChatView, chat), True)

        return await self._run(operation, work, Reread(recover))


def _framing(value: Any) -> str:
    """A framing by name (/settings framing blur) or by its index (the button's value)."""
    choices = list(Framing)
    if isinstance(value, int) and 0 <= value < len(choices):
        return choices[value].value
    if isinstance(value, str) and value.lower() in set(Framing):
        return Framing(value.lower()).value
    raise SettingRejectedError("photo_framing", value)


def _resolve(field: str, value: Any) -> tuple[str, Any]:
    """The column a button or command sets, and the value, checked against its range."""
    if field == "tz":
        if not isinstance(value, str) or not valid_timezone(value):
            raise SettingRejectedError("timezone", value)
        return "timezone", value
    if field == "framing":
        return "photo_framing", _framing(value)
    if field == "topic":
        # A forum topic id, or None for the General topic.
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise SettingRejectedError("message_thread_id", value)
        return "message_thread_id", value
    if field in SWITCHES:
        if value not in (0, 1):
            raise SettingRejectedError(None, value)
        return SWITCHES[field], bool(value)
    if field in NUMBERS:
        column = NUMBERS[field]
        allowed = SETTING_RANGES[column]
        if not isinstance(value, int) or not allowed.allows(value):
            raise SettingRejectedError(column, value, allowed.lowest, allowed.highest)
        return column, value
    raise SettingRejectedError(None, value)


async def _log_as(
    session: AsyncSession, identity: TelegramIdentity, entry: Interaction, interaction_id: uuid.UUID
) -> uuid.UUID | None:
    """Upsert who did it and log what they did; the user's row id (None: an anonymous admin).

    An anonymous admin gets no `users` row (Telegram does not say who it was): the
    log entry has no user and says `"actor": "anonymous admin"` in its context.
    """
    if identity.anonymous_admin:
        entry = replace(entry, context={**(entry.context or {}), "actor": ANONYMOUS_ADMIN})
        await InteractionRepository(session).log(entry, user_id=None, interaction_id=interaction_id)
        return None
    user_id = await UserRepository(session).upsert(identity)
    await InteractionRepository(session).log(entry, user_id=user_id, interaction_id=interaction_id)
    return user_id


def _told_apart(stats: list[PersonStats], rows: list[PersonRow]) -> list[PersonStats]:
    """Two people with one name (two "Alex") each get their @username or id after it."""
    names = names_told_apart(
        {
            row.user_id: TelegramIdentity(
                row.telegram_user_id or 0, row.username, row.first_name, row.last_name
            )
            for row in rows
            if row.telegram_user_id is not None
        }
    )
    return [
        replace(person, name=names.get(row.user_id, person.name))
        for person, row in zip(stats, rows, strict=True)
    ]


def _person_stats(row: PersonRow) -> PersonStats:
    name = row.recorded_name or "someone"
    if row.telegram_user_id is not None:
        # The name they go by now: a renamed member keeps their counts under the new name.
        name = TelegramIdentity(
            row.telegram_user_id, row.username, row.first_name, row.last_name
        ).display_name
    return copied(PersonStats, row, name=name)


def _name_of(user: User | None) -> str | None:
    if user is None:
        return None
    return TelegramIdentity(
        user.telegram_user_id, user.username, user.first_name, user.last_name
    ).display_name
