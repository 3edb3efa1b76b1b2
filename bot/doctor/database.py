"""The doctor's database checks: reachable (and encrypted), the pooler, the schema, moved chats."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.database import Database, open_database
from bot.doctor import timeouts
from bot.doctor.media import library_finding, media_dir_finding
from bot.doctor.report import (
    Finding,
    Mark,
    Report,
    failed,
    passed,
    short,
    warned,
)
from bot.services.chats import ChatDirectory
from db import migrate
from db.repositories.instagram_accounts import InstagramAccountRepository
from db.retry import Idempotent, in_transaction

# PgBouncer's usual port, and Supabase's transaction pooler (Supavisor).
POOLER_PORTS = (6432, 6543)


def _probe_settings(settings: Settings) -> Settings:
    """One short-lived connection with short timeouts."""
    return settings.model_copy(
        update={
            "db_connect_timeout_seconds": min(
                settings.db_connect_timeout_seconds, timeouts.network()
            ),
            "db_command_timeout_seconds": min(
                settings.db_command_timeout_seconds, timeouts.network()
            ),
            "db_pool_size": 1,
            "db_max_overflow": 0,
        }
    )


def looks_like_pooler(database_url: str) -> bool:
    """Neon's pooled endpoints carry `-pooler` in the host; PgBouncer listens on 6432,
    Supabase's transaction pooler on 6543."""
    url = make_url(database_url)
    return "-pooler" in (url.host or "") or url.port in POOLER_PORTS


def pooler_finding(settings: Settings) -> Finding:
    if settings.database_url is None:
        return passed("pooler", "embedded server (DATABASE_URL unset); no pooler")
    pooler = looks_like_pooler(settings.database_url)
    if pooler and not settings.db_pgbouncer:
        return failed(
            "pooler",
            "DATABASE_URL looks like a transaction pooler (a `-pooler` host, port 6432 or 6543)"
            " but DB_PGBOUNCER is not set; presses will fail with prepared-statement errors",
            "set DB_PGBOUNCER=true",
        )
    if settings.db_pgbouncer and not pooler:
        return warned(
            "pooler",
            "DB_PGBOUNCER=true but DATABASE_URL looks like a direct connection;"
            " statement caching and the idle-transaction safety net are off",
            "unset DB_PGBOUNCER unless this really is a transaction pooler",
        )
    if pooler:
        return passed("pooler", "transaction pooler, DB_PGBOUNCER=true")
    return passed("pooler", "direct connection, DB_PGBOUNCER unset")


def _is_local(database_url: str) -> bool:
    url = make_url(database_url)
    host = url.host or str(url.query.get("host", ""))
    return not host or host.startswith("/") or host in {"localhost", "127.0.0.1", "::1"}


async def _uses_tls(connection: Any) -> bool:
    raw = await connection.get_raw_connection()
    transport = getattr(raw.driver_connection, "_transport", None)
    if transport is not None:
        return transport.get_extra_info("ssl_object") is not None
    result = await connection.execute(
        text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    )
    return bool(result.scalar())


async def _reachable(settings: Settings, database: Database) -> Finding:
    try:
        async with asyncio.timeout(timeouts.whole_check()):
            async with database.engine.connect() as connection:
                version = (await connection.execute(text("SHOW server_version"))).scalar_one()
                tls = await _uses_tls(connection)
    except Exception as error:  # every cause is reported, none raised
        return failed(
            "database",
            f"unreachable ({short(error)})",
            "start PostgreSQL, or correct DATABASE_URL (host, port, user, password)",
        )
    reachable = f"reachable, PostgreSQL {str(version).split()[0]}"
    if tls:
        return passed("database", f"{reachable}, TLS in use")
    if settings.database_url is None or _is_local(settings.database_url):
        return passed("database", f"{reachable}, local connection without TLS")
    return warned(
        "database",
        f"{reachable}, but the connection is NOT encrypted",
        "add ?sslmode=require to DATABASE_URL",
    )


@dataclass
class DatabaseFacts:
    """What the database checks learned that the Instagram checks need."""

    # One indexed file path, to try under MEDIA_PUBLIC_BASE_URL.
    sample: str | None = None
    # chat id -> (stored access token, sha256 of the configured token it came from):
    # the token the bot really uses, once refreshed, is the stored one.
    stored_tokens: dict[int, tuple[str, str]] = field(default_factory=dict)


async def check_database(settings: Settings, report: Report, *, live: bool) -> DatabaseFacts:
    """Database, pooler, schema, media and library lines."""
    try:
        async with open_database(_probe_settings(settings)) as database:
            return await _database_lines(settings, database, report, live=live)
    except Exception as error:  # e.g. the embedded server did not start
        report.add(
            failed("database", f"could not be opened ({short(error)})", "see the error above")
        )
    if not live:
        report.add(pooler_finding(settings))
        report.add(media_dir_finding(settings))
    return DatabaseFacts()


async def _database_lines(
    settings: Settings, database: Database, report: Report, *, live: bool
) -> DatabaseFacts:
    facts = DatabaseFacts()
    reachable = report.add(await _reachable(settings, database)).mark is not Mark.FAIL
    if not live:
        report.add(pooler_finding(settings))
    at_head = reachable and report.add(await _schema(database)).mark is Mark.PASS
    if live:
        return facts
    report.add(media_dir_finding(settings))
    if at_head:
        findings, served = await _moved_chats(settings, database)
        for finding in findings:
            report.add(finding)
        for chat_id in served:
            finding, path = await library_finding(database, chat_id, settings.media_dir)
            report.add(finding)
            facts.sample = facts.sample or path
        facts.stored_tokens = await _stored_tokens(database, list(settings.chat_ids))
    return facts


async def _moved_chats(
    settings: Settings, database: Database
) -> tuple[list[Finding], tuple[int, ...]]:
    """A configured group Telegram upgraded to a supergroup: the bot follows it, say so.

    Also the chats served, each configured id followed to where it moved.
    """
    directory = ChatDirectory(database.sessions, settings.chat_ids)
    try:
        async with asyncio.timeout(timeouts.whole_check()):
            await directory.load()
    except Exception as error:
        fix = "run check again"
        return [failed("chats", f"moves could not be read ({short(error)})", fix)], ()
    return [
        warned(
            f"chat {old}",
            f"Telegram upgraded it to the supergroup {new}; the bot serves {new}",
            f"set TELEGRAM_CHAT_ID to {new} instead of {old}",
        )
        for old, new in directory.outdated().items()
    ], directory.served()


async def _stored_tokens(database: Database, chat_ids: list[int]) -> dict[int, tuple[str, str]]:
    async def read(session: AsyncSession) -> dict[int, tuple[str, str]]:
        rows = await InstagramAccountRepository(session).for_chats(chat_ids)
        return {row.chat_id: (row.access_token, row.configured_token_sha256) for row in rows}

    try:
        async with asyncio.timeout(timeouts.whole_check()):
            return await in_transaction(
                database.sessions, read, repeat=Idempotent("reads only"), operation="check"
            )
    except Exception:  # the configured tokens are checked instead
        return {}


async def _schema(database: Database) -> Finding:
    try:
        async with asyncio.timeout(timeouts.whole_check()):
            current = await migrate.current_revision(database.engine)
    except Exception as error:  # reported as a line
        return failed("schema", f"could not be read ({short(error)})", "run check again")
    head = migrate.head_revision()
    if current != head:
        return failed(
            "schema",
            f"at {current or 'nothing (empty database)'}, head is {head}",
            "run `python -m bot migrate` (or start the bot, which migrates)",
        )
    return passed("schema", f"at head ({head})")
