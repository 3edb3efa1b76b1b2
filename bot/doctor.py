"""`python -m bot check`: one line per check, what is wrong and what to do about it.

Every network check has a short timeout, so a dead server or a silent socket costs
seconds, never a hang. `check --live` is the liveness probe: settings, database,
schema and the scheduler's heartbeat only (no calls to Telegram or Instagram).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from aiogram import Bot
from aiogram.enums import ChatMemberStatus, ChatType
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramUnauthorizedError,
)
from aiogram.types import ChatFullInfo, User
from aiogram.utils.token import TokenValidationError
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import create_bot, telegram_session
from bot.config import ConfigError, Settings
from bot.database import Database, open_database
from bot.services.chats import ChatDirectory
from bot.services.instagram import (
    INSIGHTS_PERMISSIONS,
    NOT_ENOUGH_VIEWERS_CODE,
    PERMISSION_CODE,
)
from bot.services.media_host.check import HostCheck, check_media_store, check_prepared_folder
from db import migrate
from db.models import MediaItem
from db.repositories.instagram_accounts import InstagramAccountRepository
from db.repositories.media import MediaRepository
from db.retry import Idempotent, in_transaction

NETWORK_TIMEOUT_SECONDS = 5.0
# PgBouncer's usual port, and Supabase's transaction pooler (Supavisor).
POOLER_PORTS = (6432, 6543)
EXIT_FAILED = 1


class Mark(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    mark: Mark
    subject: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.mark}  {self.subject}: {self.detail}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


def passed(subject: str, detail: str) -> Finding:
    return Finding(Mark.PASS, subject, detail)


def warned(subject: str, detail: str, fix: str = "") -> Finding:
    return Finding(Mark.WARN, subject, detail, fix)


def failed(subject: str, detail: str, fix: str) -> Finding:
    return Finding(Mark.FAIL, subject, detail, fix)


@dataclass
class Report:
    """Findings in the order they were made; each is printed as soon as it is known."""

    emit: Callable[[str], None] = print
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> Finding:
        self.findings.append(finding)
        self.emit(finding.line())
        return finding

    @property
    def failures(self) -> int:
        return sum(finding.mark is Mark.FAIL for finding in self.findings)

    def summary(self) -> str:
        warnings = sum(finding.mark is Mark.WARN for finding in self.findings)
        if self.failures:
            return f"check failed: {self.failures} problem(s), {warnings} warning(s)"
        return f"check passed ({warnings} warning(s))" if warnings else "check passed"


def _short(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    message = " ".join(str(original).split())[:200]
    return f"{type(original).__name__}: {message}" if message else type(original).__name__


async def check(
    settings: Settings, *, live: bool = False, emit: Callable[[str], None] = print
) -> int:
    """Run every check, print one line each and a summary; 1 if anything failed."""
    report = Report(emit)
    if live:
        report.add(passed("settings", "valid"))
        await _check_database(settings, report, live=True)
        report.add(_heartbeat(settings))
    else:
        _settings(settings, report)
        if settings.bot_token is not None:
            await _check_telegram(settings, report)
        found = await _check_database(settings, report, live=False)
        await _check_instagram(settings, report, found)
    emit(report.summary())
    return EXIT_FAILED if report.failures else 0


def _settings(settings: Settings, report: Report) -> None:
    try:
        settings.require_for_run()
    except ConfigError as error:
        report.add(failed("settings", str(error), "set them in the environment or in .env"))
    else:
        report.add(passed("settings", "valid"))


# -- Telegram -------------------------------------------------------------------------


async def _check_telegram(settings: Settings, report: Report) -> None:
    try:
        # No retrying middleware: the doctor reports a failure at once.
        session = telegram_session(settings, timeout=NETWORK_TIMEOUT_SECONDS)
        bot = create_bot(settings, session, ride_out_errors=False)
    except TokenValidationError:
        report.add(
            failed(
                "telegram",
                "BOT_TOKEN is not a bot token",
                "copy it from @BotFather: it looks like 123456:ABC-DEF...",
            )
        )
        return
    try:
        me = await _telegram_identity(bot, report)
        if me is None:
            return
        report.add(await _webhook(bot, settings))
        for chat_id in settings.chat_ids:
            report.add(await check_chat(bot, me, chat_id))
    finally:
        await bot.session.close()


async def _telegram_identity(bot: Bot, report: Report) -> User | None:
    try:
        async with asyncio.timeout(NETWORK_TIMEOUT_SECONDS + 1):
            me = await bot.get_me()
    except TelegramUnauthorizedError:
        report.add(
            failed(
                "telegram",
                "Telegram rejected BOT_TOKEN (401 Unauthorized)",
                "copy the token from @BotFather again (/mybots, API Token); it changes on revoke",
            )
        )
        return None
    except (TelegramAPIError, TimeoutError) as error:
        report.add(
            failed(
                "telegram",
                f"the Bot API did not answer ({_short(error)})",
                "check the network (and TELEGRAM_API_URL if set), then run check again",
            )
        )
        return None
    report.add(passed("telegram", f"token works: @{me.username} (id {me.id})"))
    return me


async def _webhook(bot: Bot, settings: Settings) -> Finding:
    try:
        async with asyncio.timeout(NETWORK_TIMEOUT_SECONDS + 1):
            info = await bot.get_webhook_info()
    except (TelegramAPIError, TimeoutError) as error:
        return failed("webhook", f"getWebhookInfo failed ({_short(error)})", "run check again")
    if not info.url:
        return passed("webhook", "none set; the bot uses long polling")
    url = info.url
    if settings.bot_token is not None:
        url = url.replace(settings.bot_token.get_secret_value(), "[REDACTED]")
    return warned(
        "webhook",
        f"a webhook is set ({url}, {info.pending_update_count} update(s) waiting);"
        " `run` removes it at startup and keeps the waiting updates",
        "if another deployment still serves that webhook, stop it before `run`",
    )


_RIGHTS = {
    "can_send_messages": "send messages",
    "can_send_photos": "send photos",
    "can_send_videos": "send videos",
}


def missing_rights(chat: ChatFullInfo, member: Any) -> list[str] | None:
    """The rights the bot lacks in `chat` (empty: none), or None when it is not a member."""
    status = member.status
    if status in {ChatMemberStatus.LEFT, ChatMemberStatus.KICKED}:
        return None
    if status == ChatMemberStatus.RESTRICTED and not member.is_member:
        return None
    if chat.type == ChatType.CHANNEL:
        # In a channel only administrators post, and editing needs its own right.
        if status == ChatMemberStatus.CREATOR:
            return []
        if status != ChatMemberStatus.ADMINISTRATOR:
            return ["post messages", "edit its messages"]
        rights = {"can_post_messages": "post messages", "can_edit_messages": "edit its messages"}
        return [name for right, name in rights.items() if not getattr(member, right, False)]
    if status in {ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR}:
        return []
    # In a group a member may edit its own messages; sending follows its restrictions,
    # or for a plain member the chat's default permissions.
    source = member if status == ChatMemberStatus.RESTRICTED else chat.permissions
    if source is None:
        return []
    return [name for right, name in _RIGHTS.items() if getattr(source, right, True) is False]


async def check_chat(bot: Bot, me: User, chat_id: int) -> Finding:
    """The bot is in the chat and may send photos, videos and messages and edit its own."""
    subject = f"chat {chat_id}"
    add_bot = f"add @{me.username} to the chat (and check TELEGRAM_CHAT_ID; groups start with -100)"
    try:
        async with asyncio.timeout(2 * NETWORK_TIMEOUT_SECONDS + 1):
            chat = await bot.get_chat(chat_id)
            member = await bot.get_chat_member(chat_id, me.id)
    except (TelegramBadRequest, TelegramForbiddenError) as error:
        return failed(subject, f"Telegram says: {error.message}", add_bot)
    except (TelegramAPIError, TimeoutError) as error:
        return failed(subject, f"could not ask Telegram ({_short(error)})", "run check again")
    title = chat.title or chat.username or str(chat_id)
    missing = missing_rights(chat, member)
    if missing is None:
        return failed(subject, f"@{me.username} is not a member of “{title}”", add_bot)
    if missing:
        return failed(
            subject,
            f"@{me.username} cannot {', '.join(missing)} in “{title}”",
            "make the bot an administrator of the chat, or allow members these rights"
            " (chat settings, Permissions)",
        )
    return passed(
        subject,
        f"@{me.username} is {member.status} in “{title}”: can send photos and videos"
        " and edit its messages",
    )


# -- Database and media ---------------------------------------------------------------


def _probe_settings(settings: Settings) -> Settings:
    """One short-lived connection with short timeouts."""
    return settings.model_copy(
        update={
            "db_connect_timeout_seconds": min(
                settings.db_connect_timeout_seconds, NETWORK_TIMEOUT_SECONDS
            ),
            "db_command_timeout_seconds": min(
                settings.db_command_timeout_seconds, NETWORK_TIMEOUT_SECONDS
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
        async with asyncio.timeout(2 * NETWORK_TIMEOUT_SECONDS + 1):
            async with database.engine.connect() as connection:
                version = (await connection.execute(text("SHOW server_version"))).scalar_one()
                tls = await _uses_tls(connection)
    except Exception as error:  # every cause is reported, none raised
        return failed(
            "database",
            f"unreachable ({_short(error)})",
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


async def _check_database(settings: Settings, report: Report, *, live: bool) -> DatabaseFacts:
    """Database, pooler, schema, media and library lines."""
    try:
        async with open_database(_probe_settings(settings)) as database:
            return await _database_lines(settings, database, report, live=live)
    except Exception as error:  # e.g. the embedded server did not start
        report.add(
            failed("database", f"could not be opened ({_short(error)})", "see the error above")
        )
    if not live:
        report.add(pooler_finding(settings))
        report.add(_media_dir(settings))
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
    report.add(_media_dir(settings))
    if at_head:
        findings, served = await _moved_chats(settings, database)
        for finding in findings:
            report.add(finding)
        for chat_id in served:
            finding, path = await _library(database, chat_id, settings.media_dir)
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
        async with asyncio.timeout(2 * NETWORK_TIMEOUT_SECONDS + 1):
            await directory.load()
    except Exception as error:
        fix = "run check again"
        return [failed("chats", f"moves could not be read ({_short(error)})", fix)], ()
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
        async with asyncio.timeout(2 * NETWORK_TIMEOUT_SECONDS + 1):
            return await in_transaction(
                database.sessions, read, repeat=Idempotent("reads only"), operation="check"
            )
    except Exception:  # the configured tokens are checked instead
        return {}


async def _schema(database: Database) -> Finding:
    try:
        async with asyncio.timeout(2 * NETWORK_TIMEOUT_SECONDS + 1):
            current = await migrate.current_revision(database.engine)
    except Exception as error:  # reported as a line
        return failed("schema", f"could not be read ({_short(error)})", "run check again")
    head = migrate.head_revision()
    if current != head:
        return failed(
            "schema",
            f"at {current or 'nothing (empty database)'}, head is {head}",
            "run `python -m bot migrate` (or start the bot, which migrates)",
        )
    return passed("schema", f"at head ({head})")


def _media_dir(settings: Settings) -> Finding:
    folder = settings.media_dir
    if not folder.is_dir():
        return failed(
            "media", f"MEDIA_DIR {folder} is not a folder", "create it, or point MEDIA_DIR at one"
        )
    if not os.access(folder, os.R_OK | os.X_OK):
        return failed(
            "media",
            f"MEDIA_DIR {folder} is not readable by this user",
            "fix its permissions (the bot only reads it)",
        )
    return passed("media", f"MEDIA_DIR {folder} is readable")


async def _library(database: Database, chat_id: int, media_dir: Path) -> tuple[Finding, str | None]:
    async def counts(session: AsyncSession) -> tuple[int, int, int, str | None]:
        media = MediaRepository(session)
        total, _ = await media.library_counts(chat_id)
        eligible = await media.count_eligible(chat_id)
        set_aside = len(await media.set_aside_items(chat_id))
        path = await session.scalar(
            select(func.min(MediaItem.file_path)).where(
                MediaItem.chat_id == chat_id, MediaItem.is_active
            )
        )
        return total, eligible, set_aside, path

    subject = f"library {chat_id}"
    try:
        async with asyncio.timeout(2 * NETWORK_TIMEOUT_SECONDS + 1):
            total, eligible, set_aside, path = await in_transaction(
                database.sessions, counts, repeat=Idempotent("reads only"), operation="check"
            )
    except Exception as error:
        return failed(subject, f"could not be counted ({_short(error)})", "run check again"), None
    if not total:
        return warned(subject, "no media indexed", "run `python -m bot index`"), None
    if path is not None and not (media_dir / path).is_file():
        # Stored paths are relative to MEDIA_DIR: the bot would send (and publish) nothing.
        return warned(
            subject,
            f"{total} item(s) indexed, but {path} is not found under MEDIA_DIR {media_dir}",
            "stored paths are relative to MEDIA_DIR: run `python -m bot index DIR --chat ID` "
            "with DIR inside MEDIA_DIR (moved files keep their history)",
        ), None
    aside = f", {set_aside} set aside (`/queue` lists them)" if set_aside else ""
    if not eligible:
        return warned(
            subject,
            f"{total} item(s) indexed, none eligible now (all recently posted, locked, queued "
            f"or set aside){aside}",
            "add media and run `python -m bot index`, or wait for locks to expire"
            + (", or fix the files set aside and index again (or ↩️ Put back)" if set_aside else ""),
        ), path
    return passed(subject, f"{total} item(s) indexed, {eligible} eligible now{aside}"), path


def _heartbeat(settings: Settings) -> Finding:
    from bot.services.heartbeat import heartbeat_age

    age = heartbeat_age(settings.data_dir)
    if age is None or age > settings.heartbeat_max_age_seconds:
        return failed(
            "scheduler",
            "heartbeat is " + ("missing" if age is None else f"{age:.0f}s old"),
            "the bot is not running or its scheduler is stuck: restart it and read its log",
        )
    return passed("scheduler", f"ticked {age:.0f}s ago")


# -- Instagram ------------------------------------------------------------------------


@dataclass(frozen=True)
class InstagramAccount:
    """One account the bot publishes to; `label` names it in the check's lines."""

    label: str
    user_id: str
    access_token: str = field(repr=False)
    graph_url: str = ""


def instagram_accounts(
    settings: Settings, stored_tokens: dict[int, tuple[str, str]] | None = None
) -> list[InstagramAccount]:
    """Every configured account (INSTAGRAM_* or INSTAGRAM_ACCOUNTS_FILE), with the token in use.

    The bot keeps a refreshed token in the database and keeps using it while the
    configured token is unchanged (same sha256), so that stored token is checked:
    the configured one may be long expired while Auto Post works.
    """
    from bot.services.instagram_accounts import load_account_configs

    stored = stored_tokens or {}
    single = settings.instagram_accounts_file is None
    accounts = []
    for config in load_account_configs(settings):
        token = config.token
        kept = stored.get(config.chat_id)
        if kept is not None and kept[1] == config.fingerprint:
            token = kept[0]
        label = "instagram" if single else f"instagram chat {config.chat_id}"
        accounts.append(InstagramAccount(label, config.ig_user_id, token, config.graph_url))
    return accounts


def _partial_instagram(settings: Settings) -> list[str]:
    named = {
        "INSTAGRAM_USER_ID": settings.instagram_user_id,
        "INSTAGRAM_ACCESS_TOKEN": settings.instagram_access_token,
        "MEDIA_PUBLIC_BASE_URL": settings.media_public_location,
    }
    return [name for name, value in named.items() if not value]


async def _check_instagram(settings: Settings, report: Report, facts: DatabaseFacts) -> None:
    try:
        accounts = instagram_accounts(settings, facts.stored_tokens)
    except ConfigError as error:
        report.add(failed("instagram", str(error), "correct the Instagram settings"))
        return
    if not accounts:
        missing = _partial_instagram(settings)
        if len(missing) == 3:
            report.add(passed("instagram", "not configured; 🤖 Auto Post is off"))
        else:
            report.add(
                warned(
                    "instagram",
                    f"partly configured; {', '.join(missing)} missing, so Auto Post is off",
                    f"set {', '.join(missing)}, or unset the others",
                )
            )
        return
    timeout = httpx.Timeout(NETWORK_TIMEOUT_SECONDS)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as http:
        # Story results are read without Auto Post: the token and its insights
        # permission matter even without a public media URL.
        for account in accounts:
            finding = report.add(await check_instagram_account(http, account.graph_url, account))
            if finding.mark is Mark.PASS:
                report.add(await check_insights_permission(http, account.graph_url, account))
        if settings.media_public_store:
            report.add(_host_finding("media store", await check_media_store(settings, http)))
            return
        if not settings.media_public_base_url:
            report.add(
                warned(
                    "media url",
                    "MEDIA_PUBLIC_STORE or MEDIA_PUBLIC_BASE_URL missing, so Auto Post is off",
                    "set MEDIA_PUBLIC_STORE or MEDIA_PUBLIC_BASE_URL for Auto Post"
                    " (Story results work without it)",
                )
            )
            return
        prepared = await check_prepared_folder(settings, http)
        if prepared is not None:
            report.add(_host_finding("media url", prepared))
            return
        path = facts.sample or _first_media_file(settings.media_dir)
        if path is None:
            report.add(
                warned("media url", "no media to try under MEDIA_PUBLIC_BASE_URL", "index media")
            )
        else:
            url = f"{settings.media_public_base_url.rstrip('/')}/{quote(path)}"
            report.add(await check_media_url(http, url))


async def check_instagram_account(
    http: httpx.AsyncClient, graph_url: str, account: InstagramAccount
) -> Finding:
    """The token works for the account (GET /{user id}); an expired one says so."""
    renew = "renew INSTAGRAM_ACCESS_TOKEN (long-lived tokens last 60 days) and restart the bot"
    try:
        # httpx's timeouts are per read: a server trickling bytes would never trip them.
        async with asyncio.timeout(2 * NETWORK_TIMEOUT_SECONDS + 1):
            response = await http.get(
                f"{graph_url.rstrip('/')}/{account.user_id}",
                params={"fields": "id,username"},
                headers={"Authorization": f"Bearer {account.access_token}"},
            )
        body = response.json() if response.content else {}
    except (httpx.HTTPError, ValueError, TimeoutError) as failure:
        return failed(
            account.label,
            f"the Graph API did not answer ({type(failure).__name__})",
            "check the network (and INSTAGRAM_GRAPH_URL), then run check again",
        )
    error = body.get("error") if isinstance(body, dict) else None
    if response.is_error or error:
        code = error.get("code") if isinstance(error, dict) else None
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        message = message.replace(account.access_token, "[REDACTED]")[:200]
        if code == 190 or response.status_code == 401:
            return failed(
                account.label, f"the access token is expired or invalid ({message})", renew
            )
        return failed(
            account.label,
            f"the Graph API refused ({response.status_code}: {message or 'no message'})",
            "check INSTAGRAM_USER_ID (the Instagram business account id) and the token's"
            " permissions (instagram_basic, instagram_content_publish)",
        )
    name = body.get("username") or body.get("id") or account.user_id
    return passed(account.label, f"token valid for @{name}")


async def check_insights_permission(
    http: httpx.AsyncClient, graph_url: str, account: InstagramAccount
) -> Finding:
    """Story results need the insights permission; the account's own insights ask for the same."""
    subject = f"{account.label} insights"
    fix = (
        f"give the token {INSIGHTS_PERMISSIONS} (Instagram Login or Facebook Login)"
        " and restart the bot; Auto Post works without it"
    )
    try:
        async with asyncio.timeout(2 * NETWORK_TIMEOUT_SECONDS + 1):
            response = await http.get(
                f"{graph_url.rstrip('/')}/{account.user_id}/insights",
                params={"metric": "reach", "period": "day"},
                headers={"Authorization": f"Bearer {account.access_token}"},
            )
        body = response.json() if response.content else {}
    except (httpx.HTTPError, ValueError, TimeoutError) as failure:
        return warned(subject, f"could not be checked ({type(failure).__name__})", fix)
    error = body.get("error") if isinstance(body, dict) else None
    if not response.is_error and not error:
        return passed(subject, "permission granted: Story results are kept")
    code = error.get("code") if isinstance(error, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    message = message.replace(account.access_token, "[REDACTED]")[:200]
    permission = code == NOT_ENOUGH_VIEWERS_CODE and "permission" in message.lower()
    if code == PERMISSION_CODE or permission:
        return warned(subject, f"permission missing, so Story results are off ({message})", fix)
    return warned(subject, f"could not be checked ({response.status_code}: {message})", fix)


async def check_media_url(http: httpx.AsyncClient, url: str) -> Finding:
    """Instagram fetches each Story from MEDIA_PUBLIC_BASE_URL: one file must answer."""
    fix = (
        "serve MEDIA_DIR publicly over HTTPS at MEDIA_PUBLIC_BASE_URL"
        " (same relative paths); Instagram fetches each Story from there"
    )
    try:
        async with asyncio.timeout(2 * NETWORK_TIMEOUT_SECONDS + 1):
            response = await http.head(url)
    except (httpx.HTTPError, TimeoutError) as error:
        return failed("media url", f"HEAD {url} did not answer ({type(error).__name__})", fix)
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    if response.is_success and kind.startswith(("image/", "video/")):
        return passed("media url", f"HEAD {url}: {response.status_code} {kind}")
    return failed(
        "media url", f"HEAD {url}: {response.status_code} {kind or 'no content type'}", fix
    )


def _host_finding(subject: str, outcome: HostCheck) -> Finding:
    if outcome.ok:
        return passed(subject, outcome.detail)
    return failed(subject, outcome.detail, outcome.fix)


def _first_media_file(root: Path) -> str | None:
    if not root.is_dir():
        return None
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            return path.relative_to(root).as_posix()
    return None
