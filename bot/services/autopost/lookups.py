"""What Instagram says after the fact: did a refused publish go live, which Story is ours."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

import structlog

from bot.services.accounts.clients import InstagramAccounts
from bot.services.instagram import (
    CONTAINER_FAILED,
    ContainerStatus,
    InstagramClient,
    InstagramError,
    InstagramFailure,
)

logger = structlog.get_logger(__name__)

# Refusals Graph gives before it looks at the request (no token, over the rate):
# they stand even when the container's status cannot be read after them.
_REFUSED_AT_THE_DOOR = frozenset({InstagramFailure.TOKEN_EXPIRED, InstagramFailure.RATE_LIMIT})
# A container in these states has not published, and no earlier request can publish it now.
_UNPUBLISHED = CONTAINER_FAILED | {ContainerStatus.FINISHED}
# How far before the publish request a Story may be stamped and still be ours.
_STORY_MATCH_SLACK = timedelta(minutes=2)


class AfterRefusal(StrEnum):
    """What the container says after media_publish was refused."""

    PUBLISHED = "published"  # it went live all the same: record it, never publish again
    UNPUBLISHED = "unpublished"  # the refusal stands: the item may be given back
    UNKNOWN = "unknown"  # still in progress, or unreadable: ask again later


async def recheck_refused(
    instagram: InstagramClient,
    container: str,
    refusal: InstagramError,
    *,
    earlier_request: bool,
    queue_id: uuid.UUID,
) -> AfterRefusal:
    """Ask the container after a refused publish: a refusal is no proof.

    Graph answers transient errors with a 4xx too, and Instagram has published
    media whose publish call answered one. With an `earlier_request` whose
    outcome was unknown, even a refusal at the door proves nothing.
    """
    try:
        state = await instagram.container_status(container)
    except InstagramError as lookup:
        if not earlier_request and refusal.failure in _REFUSED_AT_THE_DOOR:
            return AfterRefusal.UNPUBLISHED  # turned away at the door: post by hand now
        logger.warning(
            "autopost.refusal_unchecked", queue_id=str(queue_id), reference=lookup.reference
        )
        return AfterRefusal.UNKNOWN
    if state.status is ContainerStatus.PUBLISHED:
        logger.warning(
            "autopost.published_despite_refusal",
            queue_id=str(queue_id),
            reference=refusal.reference,
        )
        return AfterRefusal.PUBLISHED
    if state.status in _UNPUBLISHED:
        return AfterRefusal.UNPUBLISHED
    return AfterRefusal.UNKNOWN


async def find_story(instagram: InstagramClient, requested_at: datetime | None) -> str | None:
    """The Story the publish made, when exactly one went live since it was requested."""
    try:
        stories = await instagram.live_stories()
    except InstagramError as error:
        logger.warning("autopost.stories_unavailable", reference=error.reference)
        return None
    if requested_at is None:
        return None
    since = requested_at - _STORY_MATCH_SLACK
    candidates = [s for s in stories if s.posted_at is not None and s.posted_at >= since]
    return candidates[0].media_id if len(candidates) == 1 else None


def chat_client(accounts: InstagramAccounts, chat_id: int) -> InstagramClient:
    """The chat's own account, with its current token."""
    client = accounts.client_for(chat_id)
    if client is None:
        raise InstagramError(InstagramFailure.API, "no Instagram account for this chat")
    return client
