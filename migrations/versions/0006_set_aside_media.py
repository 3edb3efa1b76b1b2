"""Media items Telegram refused for good (or whose file is gone) are set aside, with why and when.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDER_COLUMNS = ["chat_id", sa.literal_column("last_posted_at NULLS FIRST"), "times_posted", "id"]


def upgrade() -> None:
    op.add_column(
        "media_items", sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("media_items", sa.Column("set_aside_reason", sa.Text(), nullable=True))
    # The selection order covers only what may be selected: set-aside items drop out.
    op.drop_index("ix_media_items_eligible_order", table_name="media_items")
    op.create_index(
        "ix_media_items_eligible_order",
        "media_items",
        ORDER_COLUMNS,
        postgresql_where=sa.text("is_active AND set_aside_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_media_items_eligible_order", table_name="media_items")
    op.create_index(
        "ix_media_items_eligible_order",
        "media_items",
        ORDER_COLUMNS,
        postgresql_where=sa.text("is_active"),
    )
    op.drop_column("media_items", "set_aside_reason")
    op.drop_column("media_items", "set_aside_at")
