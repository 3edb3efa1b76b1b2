"""🤖 Auto Post: claim, publish the Story, record it like a press (docs/architecture.md §7).

The state lives on the queue row, where a restart, a second process and a
re-press all see it; `phases` reads it and lists the allowed moves. By job:
`publish` (the press path), `resolve` (the sweep), `holds` (the lease: take,
renew, give back, hand over), `record` (the press statement and the caption
after it), `lookups` (what Instagram says after the fact), `board` (what the
team is shown, through an `AutoPostBoard` the composition root injects).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.accounts.clients import InstagramAccounts
from bot.services.autopost.board import AutoPostBoard, AutoPostStep, GiveBackReason, ItemMessage
from bot.services.autopost.holds import Hold, Holds, autopost_lease
from bot.services.autopost.parts import AutoPostParts
from bot.services.autopost.phases import TRANSITIONS, AutoPostPhase, phase_of
from bot.services.autopost.publish import Publisher
from bot.services.autopost.record import Recorder
from bot.services.autopost.resolve import Resolver
from bot.services.autopost.results import (
    AutoPostClaim,
    AutoPostOutcome,
    AutoPostRefusal,
    AutoPostResult,
)
from bot.services.clock import Clock, utc_now
from bot.services.media_host import MediaHost
from bot.services.press import PressService

__all__ = [
    "TRANSITIONS",
    "AutoPostBoard",
    "AutoPostClaim",
    "AutoPostOutcome",
    "AutoPostPhase",
    "AutoPostRefusal",
    "AutoPostResult",
    "AutoPostService",
    "AutoPostStep",
    "GiveBackReason",
    "Hold",
    "ItemMessage",
    "autopost_lease",
    "phase_of",
]


class AutoPostService:
    """The press path and the resolver over one set of holds, as handlers and the runner see it."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        press_service: PressService,
        accounts: InstagramAccounts,
        media_host: MediaHost,
        board: AutoPostBoard,
        *,
        clock: Clock = utc_now,
        lease: timedelta | None = None,
        sweep_interval_seconds: float = 15.0,
        recheck_after_seconds: float = 2.0,
    ) -> None:
        holds = Holds(sessions, lease or autopost_lease(publish_timeout_seconds=60.0))
        self.recorder = Recorder(sessions, press_service, holds, board)
        parts = AutoPostParts(sessions, holds, self.recorder, board, accounts, media_host, clock)
        self.publisher = Publisher(parts)
        self.resolver = Resolver(
            parts,
            sweep_interval_seconds=sweep_interval_seconds,
            recheck_after_seconds=recheck_after_seconds,
        )
        # Hold the item so a concurrent ✅ or ⏭️ cannot also win; or say why not.
        self.claim = self.publisher.claim

    async def publish(self, claim: AutoPostClaim) -> AutoPostOutcome:
        """Publish a claimed item once; every caption from here on is the service's."""
        return await self.publisher.publish(claim)

    async def resolve(self, queue_id: uuid.UUID) -> AutoPostOutcome | None:
        """Settle one `publishing` row nobody holds; None when someone else holds it."""
        return await self.resolver.resolve(queue_id)

    async def resolve_soon(self, queue_id: uuid.UUID, *, immediately: bool = False) -> None:
        """Resolve after a short wait, in a spawned task (errors are logged)."""
        await self.resolver.resolve_soon(queue_id, immediately=immediately)

    async def sweep(self) -> int:
        """Resolve every row nobody holds, then unsettled captions; rows looked at."""
        return await self.resolver.sweep()

    async def run(self, stop: asyncio.Event) -> None:
        """The sweep, at once and then every interval until `stop`."""
        await self.resolver.run(stop)
