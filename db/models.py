"""ORM models for the tables of docs/architecture.md §2; the migrations match them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.vocabulary import (
    SETTING_RANGES,
    STORY_METRICS,
    ExpirySource,
    Framing,
    HistoryStatus,
    InstagramFlavour,
    InteractionKind,
    LockReason,
    MediaKind,
    PostingMethod,
    QueueStatus,
    UserRole,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _one_of(column: str, vocabulary: type[StrEnum]) -> CheckConstraint:
    """The CHECK that keeps `column` within the enum's values (named after the column)."""
    allowed = ", ".join(f"'{member.value}'" for member in vocabulary)
    return CheckConstraint(f"{column} IN ({allowed})", name=column)


def _within_range(column: str) -> CheckConstraint:
    """The CHECK that keeps a chat setting within its declared range (named after the column)."""
    return CheckConstraint(SETTING_RANGES[column].check(column), name=column)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, server_default=text("gen_random_uuid()"))


def _person() -> Mapped[uuid.UUID | None]:
    """Who did it; kept (as NULL) when the user row goes."""
    return mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


def _chat(ondelete: str, **kwargs: Any) -> Mapped[int]:
    """The team chat a row belongs to."""
    return mapped_column(ForeignKey("chat_settings.telegram_chat_id", ondelete=ondelete), **kwargs)


def _media(ondelete: str, **kwargs: Any) -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("media_items.id", ondelete=ondelete), **kwargs)


def _now() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


# A 64-bit integer: Telegram's chat, user and message ids, file sizes.
BigInt = Annotated[int, "bigint"]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # A column's type follows from its annotation; only a length or a width is spelled out.
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        BigInt: BigInteger(),
        datetime: DateTime(timezone=True),  # every moment is timezone-aware
        dict[str, Any]: JSONB(),
        str: Text(),
        uuid.UUID: UUID(as_uuid=True),
    }


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        _one_of("role", UserRole),
        CheckConstraint("total_posts >= 0", name="total_posts"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    telegram_user_id: Mapped[BigInt] = mapped_column(unique=True)
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(128))
    last_name: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), server_default=UserRole.MEMBER.value)
    total_posts: Mapped[int] = mapped_column(server_default="0")
    first_seen_at: Mapped[datetime] = _now()
    last_seen_at: Mapped[datetime] = _now()


class ChatSettings(Base):
    __tablename__ = "chat_settings"
    __table_args__ = (
        *(_within_range(column) for column in SETTING_RANGES),
        _one_of("photo_framing", Framing),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    telegram_chat_id: Mapped[BigInt] = mapped_column(unique=True)
    title: Mapped[str | None]
    is_paused: Mapped[bool] = mapped_column(server_default=text("false"))
    paused_at: Mapped[datetime | None]
    paused_by_user_id: Mapped[uuid.UUID | None] = _person()
    dry_run: Mapped[bool] = mapped_column(server_default=text("false"))
    posts_per_day: Mapped[int] = mapped_column(server_default="3")
    posting_hours_start: Mapped[int] = mapped_column(server_default="9")
    posting_hours_end: Mapped[int] = mapped_column(server_default="21")
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    repost_ttl_days: Mapped[int] = mapped_column(server_default="30")
    skip_ttl_days: Mapped[int] = mapped_column(server_default="45")
    last_post_sent_at: Mapped[datetime | None]
    # A forum supergroup's topic the queue lives in; None: the General topic.
    message_thread_id: Mapped[BigInt | None]
    # A sent item nobody pressed for this many days goes back to the library.
    sent_ttl_days: Mapped[int] = mapped_column(server_default="7")
    # Warn the chat when the eligible library lasts fewer days than this (0: never).
    runway_warning_days: Mapped[int] = mapped_column(server_default="7")
    # Set (conditionally) before the runway warning is sent; cleared once the runway recovers.
    runway_warned_at: Mapped[datetime | None]
    # How a photo that is not 9:16 becomes an Instagram Story (bot.services.media_prep).
    photo_framing: Mapped[str] = mapped_column(String(16), server_default=Framing.BLUR.value)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class ChatMigration(Base):
    """A group Telegram upgraded to a supergroup: its rows moved from the old id to the new."""

    __tablename__ = "chat_migrations"
    __table_args__ = (CheckConstraint("old_chat_id <> new_chat_id", name="moves_somewhere"),)

    old_chat_id: Mapped[BigInt] = mapped_column(primary_key=True)
    new_chat_id: Mapped[BigInt]
    migrated_at: Mapped[datetime] = _now()
    # Set before the team's notice is sent, so a second process never sends it again.
    team_told_at: Mapped[datetime | None]


class MediaItem(Base):
    __tablename__ = "media_items"
    __table_args__ = (
        _one_of("media_kind", MediaKind),
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
            postgresql_where=text("is_active AND set_aside_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    chat_id: Mapped[BigInt] = _chat("RESTRICT")
    # Relative to MEDIA_DIR, whatever folder was indexed (docs/architecture.md §5).
    file_path: Mapped[str]
    file_name: Mapped[str]
    file_size: Mapped[BigInt]
    file_mtime: Mapped[datetime | None]
    file_hash: Mapped[str] = mapped_column(String(64), index=True)
    media_kind: Mapped[str] = mapped_column(String(16))
    mime_type: Mapped[str] = mapped_column(String(64))
    category: Mapped[str | None]
    caption: Mapped[str | None]
    telegram_file_id: Mapped[str | None]
    times_posted: Mapped[int] = mapped_column(server_default="0")
    last_posted_at: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    # Telegram refused the file for good, or it is gone: not selected until the file
    # changes (index) or an admin puts it back.
    set_aside_at: Mapped[datetime | None]
    set_aside_reason: Mapped[str | None]
    # Why Instagram would refuse the file even after preparation (index sets it): manual only.
    autopost_refusal: Mapped[str | None]
    # When index last judged that; NULL: indexed before it did, judged at the next index.
    autopost_assessed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class PostingQueueItem(Base):
    __tablename__ = "posting_queue"
    __table_args__ = (
        _one_of("status", QueueStatus),
        Index("ix_posting_queue_chat_id_status", "chat_id", "status"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    media_item_id: Mapped[uuid.UUID] = _media("CASCADE", unique=True)
    chat_id: Mapped[BigInt] = _chat("CASCADE")
    status: Mapped[str] = mapped_column(String(16), server_default=QueueStatus.SENDING.value)
    scheduled_for: Mapped[datetime] = _now()
    telegram_message_id: Mapped[BigInt | None]
    claimed_at: Mapped[datetime | None]
    # When the holder's lease runs out, on the database's clock (its now() + the holder's
    # lease); NULL = nobody holds it. Staleness is only ever judged against now() in SQL.
    lease_expires_at: Mapped[datetime | None]
    # Set before the "Telegram didn't confirm" notice is sent: it goes out at most once.
    unconfirmed_notice_at: Mapped[datetime | None]
    send_attempts: Mapped[int] = mapped_column(server_default="0")
    sent_at: Mapped[datetime | None]
    # Auto Post: kept on the row so a retry never publishes the same item twice.
    instagram_creation_id: Mapped[str | None]
    instagram_media_id: Mapped[str | None]
    # Written with the Auto Post claim, so a retried claim recognises itself.
    autopost_claim_token: Mapped[uuid.UUID | None]
    autopost_requested_by: Mapped[BigInt | None]  # Telegram user id
    # Set before media_publish is sent: from then on the outcome may be unknown.
    instagram_publish_requested_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()


class PostingHistory(Base):
    __tablename__ = "posting_history"
    __table_args__ = (
        _one_of("status", HistoryStatus),
        _one_of("posting_method", PostingMethod),
        CheckConstraint(
            f"success = (status <> '{HistoryStatus.FAILED.value}')", name="success_matches_status"
        ),
        Index(
            "uq_posting_history_queue_item_id",
            "queue_item_id",
            unique=True,
            postgresql_where=text("queue_item_id IS NOT NULL"),
        ),
        Index("ix_posting_history_chat_id_acted_at", "chat_id", "acted_at"),
        Index("ix_posting_history_acted_by_user_id_acted_at", "acted_by_user_id", "acted_at"),
        Index("ix_posting_history_media_item_id", "media_item_id"),
        # The sweep looks for the few captions still to repair, every interval.
        Index(
            "ix_posting_history_caption_pending",
            "acted_at",
            postgresql_where=text("caption_pending_message_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    # No foreign key: the queue row is deleted when the press is recorded.
    queue_item_id: Mapped[uuid.UUID | None]
    media_item_id: Mapped[uuid.UUID] = _media("RESTRICT")
    chat_id: Mapped[BigInt] = _chat("RESTRICT")
    status: Mapped[str] = mapped_column(String(16))
    success: Mapped[bool]
    posting_method: Mapped[str] = mapped_column(
        String(32), server_default=PostingMethod.TELEGRAM_MANUAL.value
    )
    acted_by_user_id: Mapped[uuid.UUID | None] = _person()
    acted_by_name: Mapped[str | None]
    queue_created_at: Mapped[datetime | None]
    scheduled_for: Mapped[datetime | None]
    acted_at: Mapped[datetime] = _now()
    instagram_media_id: Mapped[str | None]
    error_message: Mapped[str | None]
    # An Auto Post's message whose caption does not show the recorded outcome yet.
    caption_pending_message_id: Mapped[BigInt | None]


class MediaLock(Base):
    __tablename__ = "media_locks"
    __table_args__ = (
        _one_of("reason", LockReason),
        Index(
            "uq_media_locks_permanent",
            "media_item_id",
            unique=True,
            postgresql_where=text("locked_until IS NULL"),
        ),
        Index("ix_media_locks_media_item_id_locked_until", "media_item_id", "locked_until"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    media_item_id: Mapped[uuid.UUID] = _media("CASCADE")
    reason: Mapped[str] = mapped_column(String(16))
    locked_until: Mapped[datetime | None]
    created_by_user_id: Mapped[uuid.UUID | None] = _person()
    created_at: Mapped[datetime] = _now()


class UserInteraction(Base):
    __tablename__ = "user_interactions"
    __table_args__ = (
        _one_of("kind", InteractionKind),
        Index("ix_user_interactions_chat_id_created_at", "chat_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID | None] = _person()
    chat_id: Mapped[BigInt | None]
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str]
    context: Mapped[dict[str, Any] | None]
    telegram_message_id: Mapped[BigInt | None]
    created_at: Mapped[datetime] = _now()


class InstagramAccount(Base):
    """One chat's Instagram account and its CURRENT token (refreshed in place)."""

    __tablename__ = "instagram_accounts"
    __table_args__ = (
        _one_of("flavour", InstagramFlavour),
        _one_of("expires_at_source", ExpirySource),
    )

    chat_id: Mapped[BigInt] = _chat("CASCADE", primary_key=True)
    ig_user_id: Mapped[str]
    access_token: Mapped[str]
    flavour: Mapped[str] = mapped_column(String(16))
    # sha256 of the token the operator configured: a new one replaces the stored
    # token, the same old one never overwrites a refreshed token.
    configured_token_sha256: Mapped[str] = mapped_column(String(64))
    token_obtained_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    expires_at_source: Mapped[str] = mapped_column(
        String(16), server_default=ExpirySource.ASSUMED.value
    )
    # A process refreshing the token holds this lease; a lapsed lease is free again.
    refresh_claimed_until: Mapped[datetime | None]
    refresh_claim_id: Mapped[uuid.UUID | None]
    last_refresh_error: Mapped[str | None]
    warned_7d_at: Mapped[datetime | None]
    warned_1d_at: Mapped[datetime | None]
    warned_expired_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class StoryResult(Base):
    """One Story seen live on a chat's account and the last insights read before it expired."""

    __tablename__ = "story_results"
    __table_args__ = (
        Index("uq_story_results_chat_id_ig_media_id", "chat_id", "ig_media_id", unique=True),
        # A queue item's post is tied to at most one Story.
        Index(
            "uq_story_results_history_id",
            "history_id",
            unique=True,
            postgresql_where=text("history_id IS NOT NULL"),
        ),
        Index("ix_story_results_chat_id_posted_at", "chat_id", "posted_at"),
        *(CheckConstraint(f"{metric} >= 0", name=metric) for metric in STORY_METRICS),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    chat_id: Mapped[BigInt] = _chat("CASCADE")
    ig_media_id: Mapped[str]
    posted_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]
    history_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("posting_history.id", ondelete="SET NULL")
    )
    reach: Mapped[int | None]
    views: Mapped[int | None]
    replies: Mapped[int | None]
    shares: Mapped[int | None]
    navigation: Mapped[int | None]
    profile_visits: Mapped[int | None]
    follows: Mapped[int | None]
    total_interactions: Mapped[int | None]
    # Why the last read gave no figures (e.g. Instagram's "not enough viewers").
    insights_note: Mapped[str | None]
    first_seen_at: Mapped[datetime] = _now()
    last_read_at: Mapped[datetime | None]
