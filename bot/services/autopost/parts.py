"""What the press path and the resolver share: one set of holds over one database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.accounts.clients import InstagramAccounts
from bot.services.autopost.board import AutoPostBoard
from bot.services.autopost.holds import Holds
from bot.services.autopost.record import Recorder
from bot.services.clock import Clock
from bot.services.media_host import MediaHost


@dataclass(frozen=True, slots=True)
class AutoPostParts:
    sessions: async_sessionmaker[AsyncSession]
    holds: Holds
    recorder: Recorder
    board: AutoPostBoard
    accounts: InstagramAccounts
    media_host: MediaHost
    clock: Clock
