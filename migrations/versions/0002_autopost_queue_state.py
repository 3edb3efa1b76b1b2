"""Auto Post: a `publishing` queue status and the Instagram ids on the queue row.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("posting_queue", sa.Column("instagram_creation_id", sa.Text(), nullable=True))
    op.add_column("posting_queue", sa.Column("instagram_media_id", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_posting_queue_status"), "posting_queue", type_="check")
    op.create_check_constraint(
        op.f("ck_posting_queue_status"),
        "posting_queue",
        "status IN ('pending', 'sending', 'sent', 'publishing')",
    )


def downgrade() -> None:
    op.execute("UPDATE posting_queue SET status = 'sent' WHERE status = 'publishing'")
    op.drop_constraint(op.f("ck_posting_queue_status"), "posting_queue", type_="check")
    op.create_check_constraint(
        op.f("ck_posting_queue_status"),
        "posting_queue",
        "status IN ('pending', 'sending', 'sent')",
    )
    op.drop_column("posting_queue", "instagram_media_id")
    op.drop_column("posting_queue", "instagram_creation_id")
