"""The rules' own notices to the team (`bot.services.notices.TeamNotices`), rendered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.presentation.texts import chat_migrated_notice, runway_warning

if TYPE_CHECKING:
    from bot.services.runway import Runway


class Notices:
    """The texts `TeamNotices` asks for, from `bot.presentation.texts`."""

    def runway_warning(self, runway: Runway, threshold: int) -> str:
        return runway_warning(runway, threshold)

    def chat_migrated(self, old_chat_id: int, new_chat_id: int) -> str:
        return chat_migrated_notice(old_chat_id, new_chat_id)
