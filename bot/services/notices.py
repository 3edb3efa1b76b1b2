"""The lines the rules send the team on their own, as a port that `bot.presentation` renders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.services.runway import Runway


class TeamNotices(Protocol):
    """Renders the notices of the runway watch and the chat directory; injected by `bot.app`."""

    def runway_warning(self, runway: Runway, threshold: int) -> str:
        """The chat's library runs out within `threshold` days."""
        ...

    def chat_migrated(self, old_chat_id: int, new_chat_id: int) -> str:
        """Telegram moved the group to a supergroup and the queue followed."""
        ...
