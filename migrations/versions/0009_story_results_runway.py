"""Story results kept from Instagram's insights, and the per-chat runway warning.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

METRICS = (
    "reach",
    "views",
    "replies",
    "shares",
    "navigation",
    "profile_visits",
    "follows",
    "total_interactions",
)


def upgrade() -> None:
    op.add_column(
        "chat_settings",
        sa.Column("runway_warning_days", sa.Integer(), server_default="7", nullable=False),
    )
    op.add_column(
        "chat_settings",
        sa.Column("runway_warned_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_check_constraint(
        op.f("ck_chat_settings_runway_warning_days"),
        "chat_settings",
        "runway_warning_days BETWEEN 0 AND 365",
    )
    op.create_table(
        "story_results",
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
        ),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("ig_media_id", sa.Text(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("history_id", postgresql.UUID(as_uuid=True), nullable=True),
        *(sa.Column(metric, sa.Integer(), nullable=True) for metric in METRICS),
        sa.Column("insights_note", sa.Text(), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("last_read_at", sa.DateTime(timezone=True), nullable=True),
        *(
            sa.CheckConstraint(f"{metric} >= 0", name=op.f(f"ck_story_results_{metric}"))
            for metric in METRICS
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chat_settings.telegram_chat_id"],
            name=op.f("fk_story_results_chat_id_chat_settings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["history_id"],
            ["posting_history.id"],
            name=op.f("fk_story_results_history_id_posting_history"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_story_results")),
    )
    op.create_index(
        "uq_story_results_chat_id_ig_media_id",
        "story_results",
        ["chat_id", "ig_media_id"],
        unique=True,
    )
    op.create_index(
        "uq_story_results_history_id",
        "story_results",
        ["history_id"],
        unique=True,
        postgresql_where=sa.text("history_id IS NOT NULL"),
    )
    op.create_index("ix_story_results_chat_id_posted_at", "story_results", ["chat_id", "posted_at"])


def downgrade() -> None:
    op.drop_table("story_results")
    op.drop_constraint(op.f("ck_chat_settings_runway_warning_days"), "chat_settings", type_="check")
    op.drop_column("chat_settings", "runway_warned_at")
    op.drop_column("chat_settings", "runway_warning_days")
