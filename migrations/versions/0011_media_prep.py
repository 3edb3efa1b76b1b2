"""Each chat's photo framing for Instagram, and why an item cannot be Auto Posted.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# db.vocabulary.Framing at the time of this revision.
FRAMINGS = ("as_is", "blur", "solid", "crop")


def upgrade() -> None:
    op.add_column(
        "chat_settings",
        sa.Column("photo_framing", sa.String(16), server_default="blur", nullable=False),
    )
    allowed = ", ".join(f"'{framing}'" for framing in FRAMINGS)
    op.create_check_constraint(
        op.f("ck_chat_settings_photo_framing"), "chat_settings", f"photo_framing IN ({allowed})"
    )
    op.add_column("media_items", sa.Column("autopost_refusal", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("media_items", "autopost_refusal")
    op.drop_constraint(op.f("ck_chat_settings_photo_framing"), "chat_settings", type_="check")
    op.drop_column("chat_settings", "photo_framing")
