"""ORM models for the tables of docs/architecture.md §2; the migrations match them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

QUEUE_STATUSES = ("pending", "sending", "sent", "publishing")
HISTORY_STATUSES = ("posted", "skipped", "rejected", "failed")
POSTING_METHODS = ("telegram_manual", "instagram_api")
LOCK_REASONS = ("recent_post", "skip", "rejected", "manual")
MEDIA_KINDS = ("photo", "video")
USER_ROLES = ("admin", "member")
INTERACTION_KINDS = ("command", "callback", "bot_response")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_one_of("role", USER_ROLES), name="role"),
        CheckConstraint("total_posts >= 0", name="total_posts"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(128))
    last_name: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), server_default="member")
    total_posts: Mapped[int] = mapped_column(Integer, server_default="0")
    first_seen_at: Mapped[datetime] = _now()
    last_seen_at: Mapped[datetime] = _now()


class ChatSettings(Base):
    __tablename__ = "chat_settings"
    __table_args__ = (
        CheckConstraint("posts_per_day BETWEEN 1 AND 50", name="posts_per_day"),
        CheckConstraint("posting_hours_start BETWEEN 0 AND 23", name="posting_hours_start"),
        CheckConstraint("posting_hours_end BETWEEN 0 AND 23", name="posting_hours_end"),
        CheckConstraint("repost_ttl_days >= 0", name="repost_ttl_days"),
        CheckConstraint("skip_ttl_days >= 0", name="skip_ttl_days"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    telegram_chat_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    title: Mapped[str | None] = mapped_column(Text)
    is_paused: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    dry_run: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    posts_per_day: Mapped[int] = mapped_column(Integer, server_default="3")
    posting_hours_start: Mapped[int] = mapped_column(Integer, server_default="9")
    posting_hours_end: Mapped[int] = mapped_column(Integer, server_default="21")
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    repost_ttl_days: Mapped[int] = mapped_column(Integer, server_default="30")
    skip_ttl_days: Mapped[int] = mapped_column(Integer, server_default="45")
    last_post_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class MediaItem(Base):
    __tablename__ = "media_items"
    __table_args__ = (
        CheckConstraint(_one_of("media_kind", MEDIA_KINDS), name="media_kind"),
        CheckConstraint("file_size >= 0", name="file_size"),
        CheckConstraint("times_posted >= 0", name="times_posted"),
        Index("uq_media_items_chat_id_file_path", "chat_id", "file_path", unique=True),
        # The scheduler's selection order: never posted first, then oldest post,
        # then fewest posts; the random UUID breaks ties, so LIMIT 1 reads one entry.
        Index(
            "ix_media_items_eligible_order",
            "chat_id",
            text("last_posted_at NULLS FIRST"),
            "times_posted",
            "id",
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    chat_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("chat_settings.telegram_chat_id", ondelete="RESTRICT")
    )
    file_path: Mapped[str] = mapped_column(Text)
    file_name: Mapped[str] = mapped_column(Text)
    file_size: Mapped[int] = mapped_column(BigInteger)
    file_mtime: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    file_hash: Mapped[str] = mapped_column(String(64), index=True)
    media_kind: Mapped[str] = mapped_column(String(16))
    mime_type: Mapped[str] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(Text)
    caption: Mapped[str | None] = mapped_column(Text)
    telegram_file_id: Mapped[str | None] = mapped_column(Text)
    times_posted: Mapped[int] = mapped_column(Integer, server_default="0")
    last_posted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class PostingQueueItem(Base):
    __tablename__ = "posting_queue"
    __table_args__ = (
        CheckConstraint(_one_of("status", QUEUE_STATUSES), name="status"),
        Index("ix_posting_queue_chat_id_status", "chat_id", "status"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    media_item_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("media_items.id", ondelete="CASCADE"), unique=True
    )
    chat_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("chat_settings.telegram_chat_id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    scheduled_for: Mapped[datetime] = _now()
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    send_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Auto Post: kept on the row so a retry never publishes the same item twice.
    instagram_creation_id: Mapped[str | None] = mapped_column(Text)
    instagram_media_id: Mapped[str | None] = mapped_column(Text)
    # Written with the Auto Post claim, so a retried claim recognises itself.
    autopost_claim_token: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    autopost_requested_by: Mapped[int | None] = mapped_column(BigInteger)  # Telegram user id
    # Set before media_publish is sent: from then on the outcome may be unknown.
    instagram_publish_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()


class PostingHistory(Base):
    __tablename__ = "posting_history"
    __table_args__ = (
        CheckConstraint(_one_of("status", HISTORY_STATUSES), name="status"),
        CheckConstraint(_one_of("posting_method", POSTING_METHODS), name="posting_method"),
        CheckConstraint("success = (status <> 'failed')", name="success_matches_status"),
        Index(
            "uq_posting_history_queue_item_id",
            "queue_item_id",
            unique=True,
            postgresql_where=text("queue_item_id IS NOT NULL"),
        ),
        Index("ix_posting_history_chat_id_acted_at", "chat_id", "acted_at"),
        Index("ix_posting_history_acted_by_user_id_acted_at", "acted_by_user_id", "acted_at"),
        Index("ix_posting_history_media_item_id", "media_item_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    # No foreign key: the queue row is deleted when the press is recorded.
    queue_item_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    media_item_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("media_items.id", ondelete="RESTRICT")
    )
    chat_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("chat_settings.telegram_chat_id", ondelete="RESTRICT")
    )
    status: Mapped[str] = mapped_column(String(16))
    success: Mapped[bool] = mapped_column(Boolean)
    posting_method: Mapped[str] = mapped_column(String(32), server_default="telegram_manual")
    acted_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    acted_by_name: Mapped[str | None] = mapped_column(Text)
    queue_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acted_at: Mapped[datetime] = _now()
    instagram_media_id: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)


class MediaLock(Base):
    __tablename__ = "media_locks"
    __table_args__ = (
        CheckConstraint(_one_of("reason", LOCK_REASONS), name="reason"),
        Index(
            "uq_media_locks_permanent",
            "media_item_id",
            unique=True,
            postgresql_where=text("locked_until IS NULL"),
        ),
        Index("ix_media_locks_media_item_id_locked_until", "media_item_id", "locked_until"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    media_item_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("media_items.id", ondelete="CASCADE")
    )
    reason: Mapped[str] = mapped_column(String(16))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _now()


class UserInteraction(Base):
    __tablename__ = "user_interactions"
    __table_args__ = (
        CheckConstraint(_one_of("kind", INTERACTION_KINDS), name="kind"),
        Index("ix_user_interactions_chat_id_created_at", "chat_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _now()


INSTAGRAM_FLAVOURS = ("instagram", "facebook")
EXPIRY_SOURCES = ("assumed", "debug_token", "refresh")


class InstagramAccount(Base):
    """One chat's Instagram account and its CURRENT token (refreshed in place)."""

    __tablename__ = "instagram_accounts"
    __table_args__ = (
        CheckConstraint(_one_of("flavour", INSTAGRAM_FLAVOURS), name="flavour"),
        CheckConstraint(_one_of("expires_at_source", EXPIRY_SOURCES), name="expires_at_source"),
    )

    chat_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("chat_settings.telegram_chat_id", ondelete="CASCADE"),
        primary_key=True,
    )
    ig_user_id: Mapped[str] = mapped_column(Text)
    access_token: Mapped[str] = mapped_column(Text)
    flavour: Mapped[str] = mapped_column(String(16))
    # sha256 of the token the operator configured: a new one replaces the stored
    # token, the same old one never overwrites a refreshed token.
    configured_token_sha256: Mapped[str] = mapped_column(String(64))
    token_obtained_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at_source: Mapped[str] = mapped_column(String(16), server_default="assumed")
    # A process refreshing the token holds this lease; a lapsed lease is free again.
    refresh_claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refresh_claim_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    last_refresh_error: Mapped[str | None] = mapped_column(Text)
    warned_7d_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warned_1d_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warned_expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
