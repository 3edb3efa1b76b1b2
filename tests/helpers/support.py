"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import SendMessage
from aiogram.types import Update, User
from sqlalchemy import Row, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import Services
from bot.config import Settings
from bot.domain import TelegramIdentity
from bot.presentation.keyboards import QueueAction, QueueCallback, queue_keyboard
from db.embedded import EmbeddedPostgres
from db.models import MediaItem, PostingHistory, PostingQueueItem
from db.repositories import ChatSettingsRepository
from tests.helpers.fake_telegram_session import (
    RecordingSession,
    callback_update,
    command_update,
    queue_message,
)

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class PostgresHandle:
    admin_url: str
    embedded: EmbeddedPostgres | None = None

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)


@dataclass
class TestApp:
    """Everything a dispatcher-level test touches."""

    __test__ = False

    settings: Settings
    bot: Bot
    dispatcher: Dispatcher
    services: Services
    sessions: Sessions
    telegram: RecordingSession

    async def feed(self, update: Update) -> None:
        await self.dispatcher.feed_update(self.bot, update)


class Clock:
    """The time a test sets, for the services that take a `clock`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


TEAM_CHAT = -1001000
OTHER_CHAT = -1002000
TEST_TOKEN = "123456:" + "A" * 35
# A JPEG's first bytes: enough for the library's and the sender's checks.
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@dataclass(frozen=True, slots=True)
class Person:
    """One of the suite's people: one id and one set of names, in each form a test needs."""

    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None

    @property
    def user(self) -> User:
        """As aiogram's `User`, for updates fed to the dispatcher."""
        return User(
            id=self.id,
            is_bot=False,
            first_name=self.first_name,
            last_name=self.last_name,
            username=self.username,
        )

    @property
    def identity(self) -> TelegramIdentity:
        """As the service layer sees them (what `bot.telegram.identity_of` makes of `user`)."""
        return TelegramIdentity(self.id, self.username, self.first_name, self.last_name)

    def bot_api(self) -> dict[str, object]:
        """As the Bot API's JSON `User`, for updates the fake Bot API server hands out."""
        fields: dict[str, object] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name is not None:
            fields["last_name"] = self.last_name
        if self.username is not None:
            fields["username"] = self.username
        return fields


# The team. ADA is in the `settings` fixture's ADMIN_USER_IDS; CAROL is an admin
# only when a test lists her among the chat's Telegram administrators.
ADA = Person(1, "Ada", "ada")
ALICE = Person(7, "Alice", "alice")
BOB = Person(8, "Bob", "bob")
CAROL = Person(9, "Carol", "carol")
# Names that are HTML: captions and toasts must show them escaped.
BOB_IN_TAGS = Person(10, "Bob <b>", "bob_in_tags")
BOB_AND_CO = Person(11, "<Bob> & Co", "bob_and_co")


async def say(
    app: TestApp,
    text_: str,
    who: User = ALICE.user,
    chat_id: int = TEAM_CHAT,
    chat_type: str = "supergroup",
) -> str:
    """Sends a command as `who` and returns the one reply it gets."""
    before = len(app.telegram.of(SendMessage))
    await app.feed(command_update(text_, chat_id, who, chat_type))
    await app.services.tasks.drain(5)
    replies = app.telegram.of(SendMessage)[before:]
    assert len(replies) == 1, [r.text for r in replies]
    return replies[0].text


async def seed_chat(session_factory: Sessions, chat_id: int = TEAM_CHAT, **values: object) -> None:
    async with session_factory() as session, session.begin():
        await ChatSettingsRepository(session).ensure(chat_id, "team")
        if values:
            await ChatSettingsRepository(session).update(chat_id, **values)


async def seed_media(
    session_factory: Sessions,
    chat_id: int = TEAM_CHAT,
    *,
    count: int = 1,
    prefix: str = "item",
    file_hash: str | None = None,
    **values: object,
) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    async with session_factory() as session, session.begin():
        for index in range(count):
            fields = {
                "chat_id": chat_id,
                "file_path": f"cat/{prefix}{index}.jpg",
                "file_name": f"{prefix}{index}.jpg",
                "file_size": 100,
                "file_hash": file_hash or uuid.uuid4().hex * 2,
                "media_kind": "photo",
                "mime_type": "image/jpeg",
                "category": "cat",
                **values,
            }
            media = MediaItem(**fields)
            session.add(media)
            await session.flush()
            ids.append(media.id)
    return ids


async def seed_queue_item(
    session_factory: Sessions, media_id: uuid.UUID, chat_id: int = TEAM_CHAT, message_id: int = 500
) -> uuid.UUID:
    async with session_factory() as session, session.begin():
        item = PostingQueueItem(
            media_item_id=media_id,
            chat_id=chat_id,
            status="sent",
            telegram_message_id=message_id,
        )
        session.add(item)
        await session.flush()
        return item.id


async def seed_queued(
    session_factory: Sessions, chat_id: int = TEAM_CHAT
) -> tuple[uuid.UUID, uuid.UUID]:
    """One media item already sent to the chat as message 500: (media id, queue item id)."""
    [media_id] = await seed_media(session_factory, chat_id)
    return media_id, await seed_queue_item(session_factory, media_id, chat_id)


async def seed_queued_items(session_factory: Sessions, count: int) -> list[uuid.UUID]:
    """The team chat and `count` media items already sent to it: their queue item ids."""
    await seed_chat(session_factory)
    return [
        await seed_queue_item(session_factory, media_id)
        for media_id in await seed_media(session_factory, count=count)
    ]


async def fetch_all(session_factory: Sessions, sql: str, **params: object) -> list[Row[Any]]:
    async with session_factory() as session, session.begin():
        return list((await session.execute(text(sql), params)).all())


# --- posting history rows (tests that need posts or presses already recorded) ---------------


async def history_rows(session_factory: Sessions, columns: str) -> list[Row[Any]]:
    """`columns` of every posting_history row `h`, with its presser's `users` row as `u`."""
    return await fetch_all(
        session_factory,
        f"SELECT {columns} FROM posting_history h LEFT JOIN users u ON u.id = h.acted_by_user_id",
    )


async def seed_history(
    session_factory: Sessions, media_id: uuid.UUID, chat_id: int = TEAM_CHAT, **values: object
) -> None:
    """One posting_history row: a successful post unless `values` say otherwise."""
    async with session_factory() as session, session.begin():
        fields = {"status": "posted", "success": True, **values}
        session.add(PostingHistory(media_item_id=media_id, chat_id=chat_id, **fields))


# The moment `seed_decision` counts back from (the analytics tests compare against it).
DECIDED_FROM = datetime.now(UTC).replace(microsecond=0)


async def seed_person(sessions: Sessions, telegram_id: int, first: str, username: str) -> uuid.UUID:
    """A `users` row; its id."""
    rows = await fetch_all(
        sessions,
        "INSERT INTO users (telegram_user_id, first_name, username) VALUES (:t, :f, :u)"
        " RETURNING id",
        t=telegram_id,
        f=first,
        u=username,
    )
    return rows[0].id


async def seed_decision(
    sessions: Sessions,
    media_id: uuid.UUID,
    status: str,
    who: uuid.UUID,
    name: str,
    *,
    hours_ago: float,
    waited_minutes: float = 30,
    reach: int | None = None,
) -> uuid.UUID:
    """A history row (a decision `waited_minutes` after the item arrived), with its Story's reach."""
    acted = DECIDED_FROM - timedelta(hours=hours_ago)
    [row] = await fetch_all(
        sessions,
        "INSERT INTO posting_history (media_item_id, chat_id, status, success, acted_by_user_id,"
        " acted_by_name, acted_at, queue_created_at)"
        " VALUES (:m, :c, :s, true, :u, :n, :t, :q) RETURNING id",
        m=media_id,
        c=TEAM_CHAT,
        s=status,
        u=who,
        n=name,
        t=acted,
        q=acted - timedelta(minutes=waited_minutes),
    )
    if reach is not None:
        await execute(
            sessions,
            "INSERT INTO story_results (chat_id, ig_media_id, posted_at, expires_at, history_id,"
            " reach) VALUES (:c, :i, :p, :e, :h, :r)",
            c=TEAM_CHAT,
            i=f"ig-{row.id}",
            p=acted,
            e=acted + timedelta(hours=24),
            h=row.id,
            r=reach,
        )
    return row.id


# --- one statement in a transaction of its own (rows a test plants or changes directly) -----


async def execute(session_factory: Sessions, sql: str, **params: object) -> None:
    """Runs one statement that returns no rows and commits it."""
    async with session_factory() as session, session.begin():
        await session.execute(text(sql), params)


# --- the queue message a press comes on (Auto Post and Instagram care tests) -----------------

# The caption of the queue message for seed_media's first item (its own text "Hi"):
# press updates carry it, and the captions the bot edits in must start with it.
CAPTION = "Hi\n\n📄 item0.jpg · #cat"


def press_update(
    queue_id: uuid.UUID,
    action: QueueAction = QueueAction.AUTOPOST,
    who: Person = ALICE,
    *,
    chat_id: int = TEAM_CHAT,
    caption: str = CAPTION,
    instagram: bool = True,
) -> Update:
    """`who` pressing `action` on the queue message (500) for `queue_id`, as Telegram sends it."""
    data = QueueCallback(action=action, queue_id=queue_id).pack()
    message = queue_message(chat_id, 500, caption, queue_keyboard(queue_id, instagram=instagram))
    return callback_update(data, message, who.user)


@asynccontextmanager
async def trickling_server() -> AsyncIterator[str]:
    """An HTTP server on 127.0.0.1 that answers one byte at a time, forever; yields its base URL."""
    connections: list[asyncio.StreamWriter] = []

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.2)

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in connections:
            writer.close()
        server.close()


def command_env(database_url: str, tmp_path: Path, media_dir: Path) -> dict[str, str]:
    """The environment of a `python -m bot ...` command against the test database."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "TELEGRAM_CHAT_ID": str(TEAM_CHAT),
        "DATA_DIR": str(tmp_path / "data"),
        "MEDIA_DIR": str(media_dir),
    }
