"""instagram_accounts: each chat's account and its current access token."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from db.models import InstagramAccount
from db.repositories.base import Repository, lapsed
from db.vocabulary import ExpirySource, InstagramFlavour


class ExpiryWarning(StrEnum):
    """The column that records each expiry warning, so it is sent once."""

    SEVEN_DAYS = "warned_7d_at"
    ONE_DAY = "warned_1d_at"
    EXPIRED = "warned_expired_at"


# What a new token starts without: no lease on its refresh, no error, no warning sent.
_NEW_TOKEN_CLEARS = (
    "refresh_claimed_until",
    "refresh_claim_id",
    "last_refresh_error",
    *(warning.value for warning in ExpiryWarning),
)


class InstagramAccountRepository(Repository):
    async def sync_configured(
        self,
        *,
        chat_id: int,
        ig_user_id: str,
        token: str,
        fingerprint: str,
        flavour: InstagramFlavour,
        now: datetime,
        assumed_expiry: datetime,
    ) -> None:
        """Insert the account, or take the configured token only when it is a new one.

        The same configured token never overwrites a refreshed one; a repeat sets
        the same values.
        """
        table = InstagramAccount.__table__
        statement = insert(InstagramAccount).values(
            chat_id=chat_id,
            ig_user_id=ig_user_id,
            access_token=token,
            flavour=flavour,
            configured_token_sha256=fingerprint,
            token_obtained_at=now,
            expires_at=assumed_expiry,
            expires_at_source=ExpirySource.ASSUMED,
        )
        excluded = statement.excluded
        new_token = table.c.configured_token_sha256 != excluded.configured_token_sha256

        def fresh(column: str, value: object) -> object:
            return case((new_token, value), else_=table.c[column])

        statement = statement.on_conflict_do_update(
            index_elements=[InstagramAccount.chat_id],
            set_={
                "ig_user_id": excluded.ig_user_id,
                "flavour": excluded.flavour,
                "access_token": fresh("access_token", excluded.access_token),
                "token_obtained_at": fresh("token_obtained_at", excluded.token_obtained_at),
                "expires_at": fresh("expires_at", excluded.expires_at),
                "expires_at_source": fresh("expires_at_source", excluded.expires_at_source),
                **{column: fresh(column, None) for column in _NEW_TOKEN_CLEARS},
                "configured_token_sha256": excluded.configured_token_sha256,
                "updated_at": now,
            },
        )
        await self._session.execute(statement)

    async def get(self, chat_id: int) -> InstagramAccount | None:
        return await self._session.get(InstagramAccount, chat_id, populate_existing=True)

    async def for_chats(self, chat_ids: list[int]) -> list[InstagramAccount]:
        statement = select(InstagramAccount).where(InstagramAccount.chat_id.in_(chat_ids))
        return list((await self._session.execute(statement)).scalars())

    async def claim_refresh(
        self,
        chat_id: int,
        claim_id: uuid.UUID,
        *,
        obtained_before: datetime,
        now: datetime,
        lease_until: datetime,
    ) -> InstagramAccount | None:
        """Take the refresh lease when the token is old enough and nobody holds it.

        Our own claim id matches too, so a repeat after a landed COMMIT still gets the row.
        """
        statement = (
            update(InstagramAccount)
            .where(
                InstagramAccount.chat_id == chat_id,
                InstagramAccount.flavour == InstagramFlavour.INSTAGRAM,
                or_(
                    InstagramAccount.refresh_claim_id == claim_id,
                    and_(
                        InstagramAccount.token_obtained_at < obtained_before,
                        lapsed(InstagramAccount.refresh_claimed_until, now),
                    ),
                ),
            )
            .values(refresh_claimed_until=lease_until, refresh_claim_id=claim_id)
            .returning(InstagramAccount)
            .execution_options(populate_existing=True)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def store_refreshed(
        self,
        chat_id: int,
        *,
        old_token: str,
        new_token: str,
        obtained_at: datetime,
        expires_at: datetime,
    ) -> str | None:
        """Swap in the new token only over the one it was refreshed from; the current token."""
        await self._session.execute(
            update(InstagramAccount)
            .where(InstagramAccount.chat_id == chat_id, InstagramAccount.access_token == old_token)
            .values(
                access_token=new_token,
                token_obtained_at=obtained_at,
                expires_at=expires_at,
                expires_at_source=ExpirySource.REFRESH,
                updated_at=obtained_at,
                **dict.fromkeys(_NEW_TOKEN_CLEARS),
            )
        )
        statement = select(InstagramAccount.access_token).where(InstagramAccount.chat_id == chat_id)
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def refresh_failed(
        self, chat_id: int, claim_id: uuid.UUID, *, error: str, retry_after: datetime
    ) -> None:
        """Note why, and keep the lease until the next attempt is due."""
        await self._session.execute(
            update(InstagramAccount)
            .where(
                InstagramAccount.chat_id == chat_id, InstagramAccount.refresh_claim_id == claim_id
            )
            .values(last_refresh_error=error[:500], refresh_claimed_until=retry_after)
        )

    async def set_expiry(
        self, chat_id: int, *, token: str, expires_at: datetime | None, source: ExpirySource
    ) -> None:
        await self._session.execute(
            update(InstagramAccount)
            .where(InstagramAccount.chat_id == chat_id, InstagramAccount.access_token == token)
            .values(expires_at=expires_at, expires_at_source=source)
        )

    async def mark_warned(
        self, chat_id: int, warning: ExpiryWarning, *, token: str, now: datetime
    ) -> bool:
        """Record the warning (and the milder ones it supersedes); False if already sent."""
        column = InstagramAccount.__table__.c[warning.value]
        values: dict[str, datetime] = {warning.value: now}
        order = list(ExpiryWarning)
        for milder in order[: order.index(warning)]:
            values[milder.value] = now
        return bool(
            await self._rows_changed(
                update(InstagramAccount)
                .where(
                    InstagramAccount.chat_id == chat_id,
                    InstagramAccount.access_token == token,
                    column.is_(None),
                )
                .values(**values)
            )
        )

    async def unmark_warned(self, chat_id: int, warning: ExpiryWarning, *, at: datetime) -> None:
        """Undo a mark whose message Telegram certainly refused, so a later tick retries."""
        column = InstagramAccount.__table__.c[warning.value]
        await self._session.execute(
            update(InstagramAccount)
            .where(InstagramAccount.chat_id == chat_id, column == at)
            .values({warning.value: None})
        )
