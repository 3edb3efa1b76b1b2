"""The queries; each repository takes the caller's session and never commits.

Most cover one table. `PressRepository` is the exception: a press is one SQL
statement spanning six tables (queue, users, history, media, locks, interactions),
so one round trip records it and the database decides who wins
(docs/architecture.md §3).
"""

from db.repositories.chats import ChatSettingsRepository
from db.repositories.history import HistoryRepository
from db.repositories.interactions import Interaction, InteractionRepository
from db.repositories.locks import LockRepository
from db.repositories.media import MediaRepository
from db.repositories.migrations import ChatMigrationRepository
from db.repositories.press import PressRecord, PressRepository, PressState
from db.repositories.queue import QueueRepository, SendingClaim
from db.repositories.users import UserRepository

__all__ = [
    "ChatMigrationRepository",
    "ChatSettingsRepository",
    "HistoryRepository",
    "Interaction",
    "InteractionRepository",
    "LockRepository",
    "MediaRepository",
    "PressRecord",
    "PressRepository",
    "PressState",
    "QueueRepository",
    "SendingClaim",
    "UserRepository",
]
