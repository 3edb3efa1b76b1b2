"""Read models over posting_history for /stats' chart, /live and the publishing quota."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select

from bot.domain import TelegramIdentity
from db.models import MediaItem, PostingHistory, User
from db.repositories.base import Repository
from db.repositories.users import names_told_apart
from db.vocabulary import HistoryStatus, PostingMethod, Verdict


@dataclass(frozen=True, slots=True)
class DailyCount:
    day: date
    person: str
    status: HistoryStatus
    count: int


@dataclass(frozen=True, slots=True)
class PublishedStory:
    media_id: str
    file_name: str
    acted_by_name: str | None
    acted_at: datetime


class ActivityRepository(Repository):
    async def daily_counts(self, chat_id: int, since: datetime, timezone: str) -> list[DailyCount]:
        """Presses per local day, person and status (posted, skipped, rejected).

        A person is their user row, named as they go by now; two people of one
        name (two "Alex") are told apart by their @username.
        """
        day = func.date(func.timezone(timezone, PostingHistory.acted_at))
        statement = (
            select(
                day,
                PostingHistory.acted_by_user_id,
                User.telegram_user_id,
                User.username,
                User.first_name,
                User.last_name,
                PostingHistory.status,
                func.count(),
            )
            .join(User, User.id == PostingHistory.acted_by_user_id)
            .where(
                PostingHistory.chat_id == chat_id,
                PostingHistory.acted_at >= since,
                PostingHistory.status.in_(list(Verdict)),
            )
            .group_by(day, PostingHistory.acted_by_user_id, User.id, PostingHistory.status)
            .order_by(day)
        )
        rows = list(await self._session.execute(statement))
        names = names_told_apart(
            {row[1]: TelegramIdentity(row[2], row[3], row[4], row[5]) for row in rows}
        )
        return [
            DailyCount(day=row[0], person=names[row[1]], status=HistoryStatus(row[6]), count=row[7])
            for row in rows
        ]

    async def published_by_media_ids(
        self, chat_id: int, media_ids: list[str]
    ) -> dict[str, PublishedStory]:
        """Our history entries for these Instagram media ids, by id."""
        if not media_ids:
            return {}
        statement = (
            select(PostingHistory, MediaItem.file_name)
            .join(MediaItem, MediaItem.id == PostingHistory.media_item_id)
            .where(
                PostingHistory.chat_id == chat_id,
                PostingHistory.instagram_media_id.in_(media_ids),
            )
        )
        found: dict[str, PublishedStory] = {}
        for entry, file_name in await self._session.execute(statement):
            assert entry.instagram_media_id is not None
            found[entry.instagram_media_id] = PublishedStory(
                media_id=entry.instagram_media_id,
                file_name=file_name,
                acted_by_name=entry.acted_by_name,
                acted_at=entry.acted_at,
            )
        return found

    async def oldest_api_post_since(self, chat_id: int, since: datetime) -> datetime | None:
        """When the oldest Story we published through the API within the window went up."""
        statement = select(func.min(PostingHistory.acted_at)).where(
            PostingHistory.chat_id == chat_id,
            PostingHistory.posting_method == PostingMethod.INSTAGRAM_API,
            PostingHistory.status == HistoryStatus.POSTED,
            PostingHistory.acted_at >= since,
        )
        return (await self._session.execute(statement)).scalar_one_or_none()
