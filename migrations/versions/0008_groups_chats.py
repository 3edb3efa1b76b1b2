"""Groups: where a migrated chat went, the queue's forum topic, how long a sent item waits.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_migrations",
        sa.Column("old_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("new_chat_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "migrated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("team_told_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "old_chat_id <> new_chat_id", name=op.f("ck_chat_migrations_moves_somewhere")
        ),
        sa.PrimaryKeyConstraint("old_chat_id", name=op.f("pk_chat_migrations")),
    )
    op.add_column("chat_settings", sa.Column("message_thread_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "chat_settings",
        sa.Column("sent_ttl_days", sa.Integer(), server_default="7", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_chat_settings_sent_ttl_days"), "chat_settings", "sent_ttl_days BETWEEN 1 AND 365"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_chat_settings_sent_ttl_days"), "chat_settings", type_="check")
    op.drop_column("chat_settings", "sent_ttl_days")
    op.drop_column("chat_settings", "message_thread_id")
    op.drop_table("chat_migrations")
