"""The client registry: each chat's InstagramClient (or None), using the chat's current token.

The token in use lives in `instagram_accounts`, so a refreshed token survives a
restart; a NEW configured token (its sha256 differs) replaces it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.accounts.config import AccountConfig
from bot.services.accounts.quota import PublishingQuotas
from bot.services.accounts.status import AutoPostUnavailable, InstagramStatus
from bot.services.accounts.tokens import ASSUMED_LIFETIME, AccountHealth
from bot.services.instagram import InstagramClient, InstagramError, PublishingQuota
from db.models import InstagramAccount
from db.repositories.instagram_accounts import InstagramAccountRepository
from db.retry import Idempotent, in_transaction
from db.vocabulary import ExpirySource, InstagramFlavour

logger = structlog.get_logger(__name__)

STATUS_TIMEOUT_SECONDS = 5.0


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
        self._health: dict[int, AccountHealth] = {}
        self._quotas = PublishingQuotas(sessions, clock=clock, monotonic=monotonic)
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
        self._quotas.forget(old_chat_id)

    def client_for(self, chat_id: int) -> InstagramClient | None:
        return self._clients.get(chat_id)

    def config_for(self, chat_id: int) -> AccountConfig | None:
        return self._configs.get(chat_id)

    def autopost_available(self, chat_id: int) -> bool:
        """The 🤖 button is offered: the chat has an account and media have public URLs."""
        return bool(self._base_url) and chat_id in self._clients

    def health(self, chat_id: int) -> AccountHealth | None:
        return self._health.get(chat_id)

    def autopost_refusal(self, chat_id: int) -> AutoPostUnavailable | None:
        """Why Auto Post cannot run in this chat now; None when it can."""
        if not self.autopost_available(chat_id):
            return AutoPostUnavailable.NOT_CONFIGURED
        health = self._health.get(chat_id)
        if health is not None and health.expired(self._clock()):
            return AutoPostUnavailable.TOKEN_EXPIRED
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

    async def check_quota(self, chat_id: int) -> None:
        """Before a container is created: raise QuotaReachedError at the limit."""
        await self._quotas.check(chat_id, self._clients[chat_id])

    async def status(self, chat_id: int) -> InstagramStatus | None:
        """/status: usage today and the token's health; None without an account."""
        if chat_id not in self._clients:
            return None
        quota: PublishingQuota | None = None
        refused: InstagramError | None = None
        try:
            quota = await asyncio.wait_for(
                self._quotas.read(chat_id, self._clients[chat_id]), STATUS_TIMEOUT_SECONDS
            )
        except InstagramError as error:
            logger.warning("instagram.status_quota_refused", chat_id=chat_id, cause=error.cause)
            refused = error
        except TimeoutError:
            logger.warning("instagram.status_quota_timeout", chat_id=chat_id)
        return InstagramStatus(self._clock(), quota, refused, self._health.get(chat_id))
