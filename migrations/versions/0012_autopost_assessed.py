"""When index last judged whether Instagram would take a file.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows stay NULL: the next index judges each unchanged file once (those from
    # before 0011 had no verdict; those after it are judged again, harmlessly).
    op.add_column(
        "media_items", sa.Column("autopost_assessed_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("media_items", "autopost_assessed_at")
