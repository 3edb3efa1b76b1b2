"""/live's data: the Stories live on a chat's account now, each matched to our history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.instagram import InstagramClient, LiveStory
from db.repositories import ChatSettingsRepository
from db.repositories.activity import ActivityRepository, PublishedStory
from db.retry import Idempotent, in_transaction


@dataclass(frozen=True, slots=True)
class LiveEntry:
    story: LiveStory
    ours: PublishedStory | None


@dataclass(frozen=True, slots=True)
class LiveView:
    timezone: str
    entries: list[LiveEntry]


async def live_view(
    sessions: async_sessionmaker[AsyncSession], client: InstagramClient, chat_id: int
) -> LiveView:
    """The Stories live now, each matched to our history by its media id."""
    stories = await client.live_stories()

    async def read(session: AsyncSession) -> tuple[str, dict[str, PublishedStory]]:
        chat = await ChatSettingsRepository(session).get(chat_id)
        found = await ActivityRepository(session).published_by_media_ids(
            chat_id, [story.media_id for story in stories]
        )
        return (chat.timezone if chat is not None else "UTC"), found

    timezone, found = await in_transaction(
        sessions, read, repeat=Idempotent("it only reads"), operation="instagram.live"
    )
    ordered = sorted(stories, key=lambda story: story.posted_at or datetime.max.replace(tzinfo=UTC))
    return LiveView(
        timezone=timezone,
        entries=[LiveEntry(story=story, ours=found.get(story.media_id)) for story in ordered],
    )
