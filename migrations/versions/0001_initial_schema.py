"""Initial schema: the seven tables of docs/architecture.md §2 with their constraints.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("first_name", sa.String(length=128), nullable=True),
        sa.Column("last_name", sa.String(length=128), nullable=True),
        sa.Column("role", sa.String(length=16), server_default="member", nullable=False),
        sa.Column("total_posts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("role IN ('admin', 'member')", name=op.f("ck_users_role")),
        sa.CheckConstraint("total_posts >= 0", name=op.f("ck_users_total_posts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("telegram_user_id", name=op.f("uq_users_telegram_user_id")),
    )
    op.create_table(
        "chat_settings",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("telegram_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("is_paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_by_user_id", sa.UUID(), nullable=True),
        sa.Column("dry_run", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("posts_per_day", sa.Integer(), server_default="3", nullable=False),
        sa.Column("posting_hours_start", sa.Integer(), server_default="9", nullable=False),
        sa.Column("posting_hours_end", sa.Integer(), server_default="21", nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("repost_ttl_days", sa.Integer(), server_default="30", nullable=False),
        sa.Column("skip_ttl_days", sa.Integer(), server_default="45", nullable=False),
        sa.Column("last_post_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "posting_hours_end BETWEEN 0 AND 23", name=op.f("ck_chat_settings_posting_hours_end")
        ),
        sa.CheckConstraint(
            "posting_hours_start BETWEEN 0 AND 23",
            name=op.f("ck_chat_settings_posting_hours_start"),
        ),
        sa.CheckConstraint(
            "posts_per_day BETWEEN 1 AND 50", name=op.f("ck_chat_settings_posts_per_day")
        ),
        sa.CheckConstraint("repost_ttl_days >= 0", name=op.f("ck_chat_settings_repost_ttl_days")),
        sa.CheckConstraint("skip_ttl_days >= 0", name=op.f("ck_chat_settings_skip_ttl_days")),
        sa.ForeignKeyConstraint(
            ["paused_by_user_id"],
            ["users.id"],
            name=op.f("fk_chat_settings_paused_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_settings")),
        sa.UniqueConstraint("telegram_chat_id", name=op.f("uq_chat_settings_telegram_chat_id")),
    )
    op.create_table(
        "user_interactions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("telegram_message_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('command', 'callback', 'bot_response')",
            name=op.f("ck_user_interactions_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_interactions_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_interactions")),
    )
    op.create_index(
        "ix_user_interactions_chat_id_created_at",
        "user_interactions",
        ["chat_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "media_items",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("file_path", sa.Text(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("file_mtime", sa.DateTime(timezone=True), nullable=True),
        sa.Column("file_hash", sa.String(length=64), nullable=False),
        sa.Column("media_kind", sa.String(length=16), nullable=False),
        sa.Column("mime_type", sa.String(length=64), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("telegram_file_id", sa.Text(), nullable=True),
        sa.Column("times_posted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "media_kind IN ('photo', 'video')", name=op.f("ck_media_items_media_kind")
        ),
        sa.CheckConstraint("file_size >= 0", name=op.f("ck_media_items_file_size")),
        sa.CheckConstraint("times_posted >= 0", name=op.f("ck_media_items_times_posted")),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chat_settings.telegram_chat_id"],
            name=op.f("fk_media_items_chat_id_chat_settings"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_items")),
    )
    op.create_index(
        "ix_media_items_eligible_order",
        "media_items",
        ["chat_id", sa.literal_column("last_posted_at NULLS FIRST"), "times_posted", "id"],
        unique=False,
        postgresql_where=sa.text("is_active"),
    )
    op.create_index(op.f("ix_media_items_file_hash"), "media_items", ["file_hash"], unique=False)
    op.create_index(
        "uq_media_items_chat_id_file_path", "media_items", ["chat_id", "file_path"], unique=True
    )
    op.create_table(
        "media_locks",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("media_item_id", sa.UUID(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "reason IN ('recent_post', 'skip', 'rejected', 'manual')",
            name=op.f("ck_media_locks_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_media_locks_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["media_item_id"],
            ["media_items.id"],
            name=op.f("fk_media_locks_media_item_id_media_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_locks")),
    )
    op.create_index(
        "ix_media_locks_media_item_id_locked_until",
        "media_locks",
        ["media_item_id", "locked_until"],
        unique=False,
    )
    op.create_index(
        "uq_media_locks_permanent",
        "media_locks",
        ["media_item_id"],
        unique=True,
        postgresql_where=sa.text("locked_until IS NULL"),
    )
    op.create_table(
        "posting_history",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("queue_item_id", sa.UUID(), nullable=True),
        sa.Column("media_item_id", sa.UUID(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column(
            "posting_method", sa.String(length=32), server_default="telegram_manual", nullable=False
        ),
        sa.Column("acted_by_user_id", sa.UUID(), nullable=True),
        sa.Column("acted_by_name", sa.Text(), nullable=True),
        sa.Column("queue_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "acted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("instagram_media_id", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "posting_method IN ('telegram_manual', 'instagram_api')",
            name=op.f("ck_posting_history_posting_method"),
        ),
        sa.CheckConstraint(
            "status IN ('posted', 'skipped', 'rejected', 'failed')",
            name=op.f("ck_posting_history_status"),
        ),
        sa.CheckConstraint(
            "success = (status <> 'failed')", name=op.f("ck_posting_history_success_matches_status")
        ),
        sa.ForeignKeyConstraint(
            ["acted_by_user_id"],
            ["users.id"],
            name=op.f("fk_posting_history_acted_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chat_settings.telegram_chat_id"],
            name=op.f("fk_posting_history_chat_id_chat_settings"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["media_item_id"],
            ["media_items.id"],
            name=op.f("fk_posting_history_media_item_id_media_items"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posting_history")),
    )
    op.create_index(
        "ix_posting_history_acted_by_user_id_acted_at",
        "posting_history",
        ["acted_by_user_id", "acted_at"],
        unique=False,
    )
    op.create_index(
        "ix_posting_history_chat_id_acted_at",
        "posting_history",
        ["chat_id", "acted_at"],
        unique=False,
    )
    op.create_index(
        "ix_posting_history_media_item_id", "posting_history", ["media_item_id"], unique=False
    )
    op.create_index(
        "uq_posting_history_queue_item_id",
        "posting_history",
        ["queue_item_id"],
        unique=True,
        postgresql_where=sa.text("queue_item_id IS NOT NULL"),
    )
    op.create_table(
        "posting_queue",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("media_item_id", sa.UUID(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column(
            "scheduled_for",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("telegram_message_id", sa.BigInteger(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("send_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent')", name=op.f("ck_posting_queue_status")
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chat_settings.telegram_chat_id"],
            name=op.f("fk_posting_queue_chat_id_chat_settings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["media_item_id"],
            ["media_items.id"],
            name=op.f("fk_posting_queue_media_item_id_media_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posting_queue")),
        sa.UniqueConstraint("media_item_id", name=op.f("uq_posting_queue_media_item_id")),
    )
    op.create_index(
        "ix_posting_queue_chat_id_status", "posting_queue", ["chat_id", "status"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_posting_queue_chat_id_status", table_name="posting_queue")
    op.drop_table("posting_queue")
    op.drop_index(
        "uq_posting_history_queue_item_id",
        table_name="posting_history",
        postgresql_where=sa.text("queue_item_id IS NOT NULL"),
    )
    op.drop_index("ix_posting_history_media_item_id", table_name="posting_history")
    op.drop_index("ix_posting_history_chat_id_acted_at", table_name="posting_history")
    op.drop_index("ix_posting_history_acted_by_user_id_acted_at", table_name="posting_history")
    op.drop_table("posting_history")
    op.drop_index(
        "uq_media_locks_permanent",
        table_name="media_locks",
        postgresql_where=sa.text("locked_until IS NULL"),
    )
    op.drop_index("ix_media_locks_media_item_id_locked_until", table_name="media_locks")
    op.drop_table("media_locks")
    op.drop_index("uq_media_items_chat_id_file_path", table_name="media_items")
    op.drop_index(op.f("ix_media_items_file_hash"), table_name="media_items")
    op.drop_index(
        "ix_media_items_eligible_order",
        table_name="media_items",
        postgresql_where=sa.text("is_active"),
    )
    op.drop_table("media_items")
    op.drop_index("ix_user_interactions_chat_id_created_at", table_name="user_interactions")
    op.drop_table("user_interactions")
    op.drop_table("chat_settings")
    op.drop_table("users")
