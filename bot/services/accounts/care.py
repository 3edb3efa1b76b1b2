"""Keeping each chat's Instagram token alive: refresh it, or warn the admins in time.

Instagram-Login tokens are refreshed once they are more than a day old. Two
processes never refresh one token at once: a lease (a conditional UPDATE) picks
one, and the new token replaces only the one it was refreshed from. A refresh
whose answer is lost leaves the old token stored; it stays valid until it
expires, so the next attempt simply refreshes it again.

Tokens that cannot be refreshed, and ones whose refresh keeps failing, get a
warning in the chat 7 days and 1 day before expiry and once when expired; each
is recorded before it is sent, so a restart or a second process never repeats it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramMigrateToChat
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.accounts.clients import InstagramAccounts
from bot.services.accounts.tokens import ASSUMED_LIFETIME
from bot.services.instagram import InstagramError
from bot.services.periodic import every
from bot.telegram_retry import at_most_once, delivered_nothing
from db.repositories import ChatSettingsRepository
from db.repositories.instagram_accounts import ExpiryWarning, InstagramAccountRepository
from db.retry import Reread, in_idempotent_transaction, in_transaction
from db.vocabulary import ExpirySource, InstagramFlavour

logger = structlog.get_logger(__name__)
T = TypeVar("T")

REFRESH_AFTER = timedelta(days=1)
REFRESH_LEASE = timedelta(minutes=5)
RETRY_FAILED_REFRESH_AFTER = timedelta(hours=1)


class RefreshResult(StrEnum):
    REFRESHED = "refreshed"
    NOT_DUE = "not_due"  # too young, another process holds the lease, or not refreshable
    FAILED = "failed"
    SUPERSEDED = "superseded"  # another process stored a newer token meanwhile


@dataclass(frozen=True, slots=True)
class ExpiryNotice:
    """A warning due to a chat's admins about its token; the presentation words it."""

    kind: ExpiryWarning
    expires_at: datetime
    left: timedelta
    # Instagram Login refreshes by itself: the warning says that refreshing failed.
    refresh_failed: bool
    last_refresh_error: str | None


@dataclass(frozen=True)
class TokenCare:
    """Refreshes each chat's Instagram token in time, or warns its admins before it expires."""

    sessions: async_sessionmaker[AsyncSession]
    accounts: InstagramAccounts
    bot: Bot
    _: KW_ONLY
    clock: Callable[[], datetime]
    # Words a due warning (the presentation's, injected by the composition root).
    render_warning: Callable[[ExpiryNotice], str]
    interval_seconds: float = 3600.0
    # Moves a chat's rows to the supergroup Telegram upgraded it to (ChatDirectory.follow).
    follow_migration: Callable[[int, int], Awaitable[int | None]] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set; a failing tick is logged and the loop goes on."""
        await every(
            self.interval_seconds, stop, self.tick, log=logger, failed="instagram.care_failed"
        )

    async def tick(self) -> None:
        for row in await self.accounts.reload():
            try:
                if row.flavour == InstagramFlavour.INSTAGRAM:
                    await self.refresh(row.chat_id)
                elif row.expires_at_source == ExpirySource.ASSUMED:
                    await self.learn_expiry(row.chat_id, row.access_token)
                await self.warn_if_due(row.chat_id)
            except Exception:
                # One chat's trouble never keeps the others' tokens from care.
                logger.exception("instagram.care_chat_failed", chat_id=row.chat_id)

    async def refresh(self, chat_id: int) -> RefreshResult:
        now = self.clock()
        claim_id = uuid.uuid4()

        row = await self._write(
            lambda accounts: accounts.claim_refresh(
                chat_id,
                claim_id,
                obtained_before=now - REFRESH_AFTER,
                now=now,
                lease_until=now + REFRESH_LEASE,
            ),
            operation="instagram.claim_refresh",
            because="our claim id matches the lease a landed attempt took",
        )
        if row is None:
            return RefreshResult.NOT_DUE
        old_token = row.access_token
        client = self.accounts.client_for(chat_id)
        assert client is not None
        client.set_access_token(old_token)
        try:
            new_token, expires_in = await client.refresh_access_token()
        except InstagramError as error:
            cause = error.cause
            logger.warning(
                "instagram.refresh_failed",
                chat_id=chat_id,
                failure=error.failure.value,
                detail=error.detail,
            )
            await self._write(
                lambda accounts: accounts.refresh_failed(
                    chat_id, claim_id, error=cause, retry_after=now + RETRY_FAILED_REFRESH_AFTER
                ),
                operation="instagram.refresh_failed",
                because="it sets values",
            )
            await self.accounts.reload()
            return RefreshResult.FAILED
        # Learned before anything can log it.
        self.accounts.use_token(chat_id, new_token)
        lifetime = timedelta(seconds=expires_in) if expires_in else ASSUMED_LIFETIME
        current = await self._write(
            lambda accounts: accounts.store_refreshed(
                chat_id,
                old_token=old_token,
                new_token=new_token,
                obtained_at=now,
                expires_at=now + lifetime,
            ),
            operation="instagram.store_token",
            because="it swaps only over the old token, then reads",
        )
        await self.accounts.reload()
        if current != new_token:
            logger.warning("instagram.refresh_superseded", chat_id=chat_id)
            return RefreshResult.SUPERSEDED
        logger.info("instagram.token_refreshed", chat_id=chat_id, days=lifetime.days)
        return RefreshResult.REFRESHED

    async def learn_expiry(self, chat_id: int, token: str) -> None:
        """Facebook Login: ask /debug_token when the token expires."""
        client = self.accounts.client_for(chat_id)
        assert client is not None
        try:
            expires_at = await client.token_expiry()
        except InstagramError as error:
            logger.warning(
                "instagram.debug_token_failed", chat_id=chat_id, failure=error.failure.value
            )
            return
        await self._write(
            lambda accounts: accounts.set_expiry(
                chat_id, token=token, expires_at=expires_at, source=ExpirySource.DEBUG_TOKEN
            ),
            operation="instagram.set_expiry",
            because="it sets values",
        )
        await self.accounts.reload()

    def due_warning(self, chat_id: int, now: datetime) -> ExpiryNotice | None:
        health = self.accounts.health(chat_id)
        if health is None or health.expires_at is None:
            return None
        left = health.expires_at - now
        if left > timedelta(days=7):
            return None
        if left <= timedelta(0):
            kind = ExpiryWarning.EXPIRED
        elif left <= timedelta(days=1):
            kind = ExpiryWarning.ONE_DAY
        else:
            kind = ExpiryWarning.SEVEN_DAYS
        return ExpiryNotice(
            kind,
            health.expires_at,
            left,
            refresh_failed=health.flavour is InstagramFlavour.INSTAGRAM,
            last_refresh_error=health.last_refresh_error,
        )

    async def warn_if_due(self, chat_id: int) -> ExpiryWarning | None:
        """Send the due warning once: it is recorded first, and only one process records it."""
        now = self.clock()
        warning = self.due_warning(chat_id, now)
        if warning is None:
            return None
        client = self.accounts.client_for(chat_id)
        assert client is not None
        token = client.access_token

        async def mark(session: AsyncSession) -> bool:
            return await InstagramAccountRepository(session).mark_warned(
                chat_id, warning.kind, token=token, now=now
            )

        async def ours(session: AsyncSession) -> bool | None:
            # After a lost connection: did our mark land? Then we still send.
            row = await InstagramAccountRepository(session).get(chat_id)
            return True if row is not None and getattr(row, warning.kind.value) == now else None

        # Only the process whose mark lands sends: at most once, and not lost to a lost reply.
        marked = await in_transaction(
            self.sessions, mark, repeat=Reread(ours), operation="instagram.mark_warned"
        )
        if not marked:
            return None
        try:
            with at_most_once():
                await self._send(chat_id, self.render_warning(warning))
        except TelegramAPIError as error:
            if not delivered_nothing(error):
                # It may have arrived; a duplicate warning is worse than none.
                logger.warning("instagram.warning_unknown", chat_id=chat_id, error=str(error))
                return None
            # Telegram refused it or never saw it: unmark, so a later tick tries again.
            logger.warning("instagram.warning_refused", chat_id=chat_id, error=error.message)
            await self._write(
                lambda accounts: accounts.unmark_warned(chat_id, warning.kind, at=now),
                operation="instagram.unmark_warned",
                because="it sets values",
            )
            return None
        logger.info("instagram.expiry_warned", chat_id=chat_id, warning=warning.kind.value)
        return warning.kind

    async def _write(
        self,
        change: Callable[[InstagramAccountRepository], Awaitable[T]],
        *,
        operation: str,
        because: str,
    ) -> T:
        """One idempotent transaction on the chat's account row."""

        async def work(session: AsyncSession) -> T:
            return await change(InstagramAccountRepository(session))

        return await in_idempotent_transaction(
            self.sessions, work, operation=operation, because=because
        )

    async def _send(self, chat_id: int, text: str) -> None:
        """To the chat's queue topic; a group Telegram upgraded is followed to its new id."""
        try:
            await self.bot.send_message(chat_id, text, message_thread_id=await self._topic(chat_id))
        except TelegramMigrateToChat as moved:
            # Nothing arrived: the warning (marked on the account row, which moves with
            # the chat) goes to the supergroup instead of being lost.
            if self.follow_migration is None:
                raise
            new_chat_id = moved.migrate_to_chat_id
            topic = await self.follow_migration(chat_id, new_chat_id)
            await self.bot.send_message(new_chat_id, text, message_thread_id=topic)

    async def _topic(self, chat_id: int) -> int | None:
        async def read(session: AsyncSession) -> int | None:
            return await ChatSettingsRepository(session).topic_of(chat_id)

        return await in_idempotent_transaction(
            self.sessions, read, operation="instagram.topic", because="it reads"
        )
