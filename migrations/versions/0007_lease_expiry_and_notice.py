"""Leases carry their own expiry; the unconfirmed-send notice and the Auto Post caption are marked.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "posting_queue",
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "posting_queue",
        sa.Column("unconfirmed_notice_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "posting_history",
        sa.Column("caption_pending_message_id", sa.BigInteger(), nullable=True),
    )
    op.create_index(
        "ix_posting_history_caption_pending",
        "posting_history",
        ["acted_at"],
        postgresql_where=sa.text("caption_pending_message_id IS NOT NULL"),
    )
    # Rows held when this runs keep the leases the old code judged them by.
    op.execute(
        "UPDATE posting_queue SET lease_expires_at = claimed_at + CASE status"
        " WHEN 'publishing' THEN interval '600 seconds' ELSE interval '300 seconds' END"
        " WHERE claimed_at IS NOT NULL AND status IN ('sending', 'publishing')"
    )


def downgrade() -> None:
    op.drop_index("ix_posting_history_caption_pending", table_name="posting_history")
    op.drop_column("posting_history", "caption_pending_message_id")
    op.drop_column("posting_queue", "unconfirmed_notice_at")
    op.drop_column("posting_queue", "lease_expires_at")
