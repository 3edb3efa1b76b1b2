"""Per-chat Instagram accounts with the current (refreshed) access token.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instagram_accounts",
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("ig_user_id", sa.Text(), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("flavour", sa.String(length=16), nullable=False),
        sa.Column("configured_token_sha256", sa.String(length=64), nullable=False),
        sa.Column("token_obtained_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "expires_at_source", sa.String(length=16), server_default="assumed", nullable=False
        ),
        sa.Column("refresh_claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_claim_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("last_refresh_error", sa.Text(), nullable=True),
        sa.Column("warned_7d_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warned_1d_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warned_expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "flavour IN ('instagram', 'facebook')", name=op.f("ck_instagram_accounts_flavour")
        ),
        sa.CheckConstraint(
            "expires_at_source IN ('assumed', 'debug_token', 'refresh')",
            name=op.f("ck_instagram_accounts_expires_at_source"),
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chat_settings.telegram_chat_id"],
            name=op.f("fk_instagram_accounts_chat_id_chat_settings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_instagram_accounts")),
    )


def downgrade() -> None:
    op.drop_table("instagram_accounts")
