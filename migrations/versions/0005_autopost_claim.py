"""Auto Post: a claim token, who pressed, and the "publish requested" marker on the queue row.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "posting_queue",
        sa.Column("autopost_claim_token", postgresql.UUID(as_uuid=True), nullable=True),
    )
    op.add_column(
        "posting_queue", sa.Column("autopost_requested_by", sa.BigInteger(), nullable=True)
    )
    op.add_column(
        "posting_queue",
        sa.Column("instagram_publish_requested_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("posting_queue", "instagram_publish_requested_at")
    op.drop_column("posting_queue", "autopost_requested_by")
    op.drop_column("posting_queue", "autopost_claim_token")
