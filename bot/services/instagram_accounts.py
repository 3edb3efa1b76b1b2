"""Per-chat Instagram accounts: configuration, the current token, and the publishing quota.

One chat: INSTAGRAM_USER_ID and INSTAGRAM_ACCESS_TOKEN. Several chats: a TOML file
named by INSTAGRAM_ACCOUNTS_FILE, one `[[account]]` per chat, whose token is read
from an environment variable (`token_env`) or a file (`token_file`), never from
the TOML itself. The token in use lives in `instagram_accounts`, so a refreshed
token survives a restart; a NEW configured token (its sha256 differs) replaces it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import ConfigError, Settings
from bot.presentation.texts import AUTOPOST_NOT_CONFIGURED, AUTOPOST_TOKEN_EXPIRED
from bot.services.instagram import (
    InstagramClient,
    InstagramError,
    InstagramFailure,
    LiveStory,
    PublishingQuota,
)
from db.models import InstagramAccount
from db.repositories import ChatSettingsRepository
from db.repositories.activity import ActivityRepository, PublishedStory
from db.repositories.instagram_accounts import InstagramAccountRepository
from db.retry import Idempotent, in_transaction
from db.vocabulary import ExpirySource, InstagramFlavour

logger = structlog.get_logger(__name__)

# Without /debug_token or a refresh answer, a long-lived token is assumed to
# last this long from when we first saw it.
ASSUMED_LIFETIME = timedelta(days=60)
QUOTA_CACHE_SECONDS = 60.0
STATUS_TIMEOUT_SECONDS = 5.0

HOW_TO_CONFIGURE = (
    "Instagram isn't configured for this chat. Set INSTAGRAM_USER_ID, "
    "INSTAGRAM_ACCESS_TOKEN and MEDIA_PUBLIC_BASE_URL (one chat), or add the chat to "
    "the INSTAGRAM_ACCOUNTS_FILE (several chats), then restart the bot. "
    "The README's “Instagram” section explains both token flavours."
)
RENEW_TOKEN = (
    "an admin must create a new long-lived token, put it in the environment variable "
    "or token file this chat's account names (INSTAGRAM_ACCESS_TOKEN for one chat), "
    "and restart the bot"
)


@dataclass(frozen=True, slots=True)
class AccountConfig:
    chat_id: int
    ig_user_id: str
    token: str = field(repr=False)
    graph_url: str
    flavour: InstagramFlavour

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()


def _read_token(entry: dict[str, Any], where: str) -> str:
    env_name = entry.get("token_env")
    file_name = entry.get("token_file")
    if bool(env_name) == bool(file_name):
        raise ConfigError(f"{where}: give exactly one of token_env or token_file")
    if env_name:
        if not isinstance(env_name, str):
            raise ConfigError(f"{where}: token_env must be the name of an environment variable")
        token = os.environ.get(env_name, "").strip()
        if not token:
            raise ConfigError(f"{where}: environment variable {env_name} is not set")
        return token
    if not isinstance(file_name, str):
        raise ConfigError(f"{where}: token_file must be a path (a string)")
    path = Path(file_name).expanduser()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"{where}: token_file {path} cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{where}: token_file {path} is not UTF-8 text (a token is plain ASCII)"
        ) from None
    if not token:
        raise ConfigError(f"{where}: token_file {path} is empty")
    return token


def _read_accounts_file(path: Path) -> list[dict[str, Any]]:
    """The `[[account]]` tables of the accounts file; ConfigError names what is wrong."""
    where = f"INSTAGRAM_ACCOUNTS_FILE {path}"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{where}: not UTF-8 text (byte {error.start})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML ({error})") from None
    entries = document.get("account", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: account must be [[account]] tables")
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{where} account #{number}: must be an [[account]] table, not {entry!r}"
            )
    return entries


def load_account_configs(settings: Settings) -> list[AccountConfig]:
    """Every configured account, tokens read; ConfigError names what is wrong."""
    served = set(settings.chat_ids)
    env_pair = settings.instagram_user_id or settings.instagram_access_token
    if settings.instagram_accounts_file is None:
        if not (settings.instagram_user_id and settings.instagram_access_token):
            return []
        if len(served) != 1:
            raise ConfigError(
                "INSTAGRAM_USER_ID and INSTAGRAM_ACCESS_TOKEN serve exactly one chat; "
                "with several chats use INSTAGRAM_ACCOUNTS_FILE"
            )
        return [
            AccountConfig(
                chat_id=settings.chat_ids[0],
                ig_user_id=settings.instagram_user_id,
                token=settings.instagram_access_token.get_secret_value(),
                graph_url=settings.instagram_graph_url,
                flavour=settings.instagram_flavour_for(settings.instagram_graph_url),
            )
        ]
    if env_pair:
        raise ConfigError(
            "INSTAGRAM_ACCOUNTS_FILE: set either it or INSTAGRAM_USER_ID/INSTAGRAM_ACCESS_TOKEN"
        )
    path = settings.instagram_accounts_file
    configs: dict[int, AccountConfig] = {}
    for number, entry in enumerate(_read_accounts_file(path), 1):
        where = f"INSTAGRAM_ACCOUNTS_FILE {path} account #{number}"
        chat_id = entry.get("chat_id")
        user_id = entry.get("instagram_user_id")
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            raise ConfigError(f"{where}: chat_id is required and must be a number")
        if not isinstance(user_id, str | int) or isinstance(user_id, bool) or not user_id:
            raise ConfigError(f"{where}: instagram_user_id is required (a string of digits)")
        if served and chat_id not in served:
            raise ConfigError(f"{where}: chat {chat_id} is not in TELEGRAM_CHAT_ID")
        if chat_id in configs:
            raise ConfigError(f"{where}: chat {chat_id} is listed twice")
        graph_url = entry.get("graph_url") or settings.instagram_graph_url
        if not isinstance(graph_url, str):
            raise ConfigError(f"{where}: graph_url must be a URL (a string)")
        configs[chat_id] = AccountConfig(
            chat_id=chat_id,
            ig_user_id=str(user_id),
            token=_read_token(entry, where),
            graph_url=graph_url,
            flavour=settings.instagram_flavour_for(graph_url),
        )
    return list(configs.values())


@dataclass(frozen=True, slots=True)
class AccountHealth:
    """What the database says about a chat's token."""

    flavour: InstagramFlavour
    expires_at: datetime | None
    expires_at_source: ExpirySource
    last_refresh_error: str | None

    def days_left(self, now: datetime) -> float | None:
        if self.expires_at is None:
            return None
        return (self.expires_at - now).total_seconds() / 86400

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class QuotaReachedError(InstagramError):
    """At the daily publishing limit: nothing is created."""

    def __init__(self, quota: PublishingQuota, frees_in: timedelta | None) -> None:
        super().__init__(InstagramFailure.QUOTA_REACHED, f"{quota.used}/{quota.total}")
        self.quota = quota
        self.frees_in = frees_in

    @property
    def cause(self) -> str:
        return (
            f"the daily Instagram limit is reached ({self.quota.used}/{self.quota.total} "
            f"posts in 24 h); it frees up {roughly(self.frees_in)} — post by hand meanwhile"
        )


def roughly(delta: timedelta | None) -> str:
    if delta is None:
        return "within 24 hours"
    minutes = max(1, round(delta.total_seconds() / 60))
    if minutes < 90:
        return f"in about {minutes} min"
    return f"in about {round(minutes / 60)} h"


class InstagramAccounts:
    """Gives each chat its InstagramClient (or None) and keeps the tokens current."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient | None,
        configs: list[AccountConfig],
        *,
        media_public_base_url: str | None,
        clock: Callable[[], datetime],
        publish_timeout_seconds: float = 60.0,
        poll_interval_seconds: float = 2.0,
        on_token: Callable[[str], None] = lambda token: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if configs and http is None:
            raise ValueError("accounts need an HTTP client")
        self._sessions = sessions
        self._configs = {config.chat_id: config for config in configs}
        self._base_url = media_public_base_url
        self._clock = clock
        self._on_token = on_token
        self._monotonic = monotonic
        self._health: dict[int, AccountHealth] = {}
        self._quota: dict[int, tuple[float, PublishingQuota]] = {}
        self._clients: dict[int, InstagramClient] = {}
        for config in configs:
            assert http is not None
            self._clients[config.chat_id] = InstagramClient(
                http,
                graph_url=config.graph_url,
                user_id=config.ig_user_id,
                access_token=config.token,
                publish_timeout_seconds=publish_timeout_seconds,
                poll_interval_seconds=poll_interval_seconds,
            )
            self._on_token(config.token)

    @property
    def chat_ids(self) -> list[int]:
        return list(self._configs)

    def follow_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        """The chat moved (a supergroup upgrade): its account now serves the new id."""
        config = self._configs.pop(old_chat_id, None)
        if config is None or new_chat_id in self._configs:
            return
        self._configs[new_chat_id] = dataclasses.replace(config, chat_id=new_chat_id)
        if old_chat_id in self._clients:
            self._clients[new_chat_id] = self._clients.pop(old_chat_id)
        if old_chat_id in self._health:
            self._health[new_chat_id] = self._health.pop(old_chat_id)
        self._quota.pop(old_chat_id, None)

    def client_for(self, chat_id: int) -> InstagramClient | None:
        return self._clients.get(chat_id)

    def config_for(self, chat_id: int) -> AccountConfig | None:
        return self._configs.get(chat_id)

    def autopost_available(self, chat_id: int) -> bool:
        """The 🤖 button is offered: the chat has an account and media have public URLs."""
        return bool(self._base_url) and chat_id in self._clients

    def health(self, chat_id: int) -> AccountHealth | None:
        return self._health.get(chat_id)

    def autopost_refusal(self, chat_id: int) -> str | None:
        """Why Auto Post cannot run in this chat now, for the presser; None when it can."""
        if not self.autopost_available(chat_id):
            return AUTOPOST_NOT_CONFIGURED
        health = self._health.get(chat_id)
        if health is not None and health.expired(self._clock()):
            return AUTOPOST_TOKEN_EXPIRED
        return None

    def use_token(self, chat_id: int, token: str) -> None:
        """Every request from now on uses `token`; the log redactor learns it first."""
        self._on_token(token)
        client = self._clients.get(chat_id)
        if client is not None and client.access_token != token:
            client.set_access_token(token)

    async def sync(self) -> None:
        """At startup: write the configured accounts, then use the stored tokens."""
        now = self._clock()

        async def work(session: AsyncSession) -> None:
            repository = InstagramAccountRepository(session)
            for config in self._configs.values():
                await repository.sync_configured(
                    chat_id=config.chat_id,
                    ig_user_id=config.ig_user_id,
                    token=config.token,
                    fingerprint=config.fingerprint,
                    flavour=config.flavour,
                    now=now,
                    assumed_expiry=now + ASSUMED_LIFETIME,
                )

        if self._configs:
            await in_transaction(
                self._sessions,
                work,
                repeat=Idempotent("it sets the same values; a known token is kept"),
                operation="instagram.sync_accounts",
            )
        await self.reload()

    async def reload(self) -> list[InstagramAccount]:
        """Take the tokens and expiries another process may have refreshed."""
        if not self._configs:
            return []

        async def read(session: AsyncSession) -> list[InstagramAccount]:
            return await InstagramAccountRepository(session).for_chats(list(self._configs))

        rows = await in_transaction(
            self._sessions, read, repeat=Idempotent("it only reads"), operation="instagram.reload"
        )
        for row in rows:
            self.remember(row)
        return rows

    def remember(self, row: InstagramAccount) -> None:
        self.use_token(row.chat_id, row.access_token)
        self._health[row.chat_id] = AccountHealth(
            flavour=InstagramFlavour(row.flavour),
            expires_at=row.expires_at,
            expires_at_source=ExpirySource(row.expires_at_source),
            last_refresh_error=row.last_refresh_error,
        )

    async def quota(self, chat_id: int, *, max_age: float = QUOTA_CACHE_SECONDS) -> PublishingQuota:
        client = self._clients[chat_id]
        cached = self._quota.get(chat_id)
        now = self._monotonic()
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        quota = await client.publishing_limit()
        self._quota[chat_id] = (now, quota)
        return quota

    async def check_quota(self, chat_id: int) -> None:
        """Before a container is created: raise QuotaReachedError at the limit.

        A quota that cannot be read does not block the post; Instagram still
        refuses one over the limit, and that failure is reported.
        """
        try:
            quota = await self.quota(chat_id, max_age=0)
        except InstagramError as error:
            logger.warning("instagram.quota_unknown", chat_id=chat_id, failure=error.failure.value)
            return
        if not quota.reached:
            return
        now = self._clock()
        window = timedelta(seconds=quota.window_seconds)

        async def oldest(session: AsyncSession) -> datetime | None:
            return await ActivityRepository(session).oldest_api_post_since(chat_id, now - window)

        try:
            first = await in_transaction(
                self._sessions, oldest, repeat=Idempotent("it only reads"), operation="quota.frees"
            )
        except Exception:
            logger.warning("instagram.quota_frees_unknown", chat_id=chat_id, exc_info=True)
            first = None
        logger.info("instagram.quota_reached", chat_id=chat_id, used=quota.used, total=quota.total)
        raise QuotaReachedError(quota, None if first is None else first + window - now)

    async def status_lines(self, chat_id: int) -> list[str]:
        """/status: usage today and the token's days left; nothing without an account."""
        if chat_id not in self._clients:
            return []
        lines = []
        try:
            quota = await asyncio.wait_for(self.quota(chat_id), STATUS_TIMEOUT_SECONDS)
            lines.append(f"📸 Instagram: {quota.used}/{quota.total} today")
        except (InstagramError, TimeoutError) as error:
            cause = error.cause if isinstance(error, InstagramError) else "no answer in time"
            lines.append(f"📸 Instagram: usage unknown ({cause})")
        lines.append(token_line(self._health.get(chat_id), self._clock()))
        return lines


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


def token_line(health: AccountHealth | None, now: datetime) -> str:
    if health is None:
        return "🔑 Token: not checked yet"
    days = health.days_left(now)
    if days is None:
        text = "🔑 Token: never expires"
    elif days <= 0:
        text = "🔑 Token: <b>expired</b> — renew it (see the README)"
    else:
        assumed = (
            " (assumed: 60 days from first use)"
            if health.expires_at_source == ExpirySource.ASSUMED
            else ""
        )
        left = "less than a day" if days < 1 else f"{days:.0f} days"
        text = f"🔑 Token: {left} left{assumed}"
    if health.last_refresh_error:
        text += " · automatic refresh failing"
    elif health.flavour is InstagramFlavour.INSTAGRAM:
        text += " · refreshed automatically"
    return text
