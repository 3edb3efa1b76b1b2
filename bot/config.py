"""Settings from the environment or `.env` (see the README's Configuration table)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url

from db.vocabulary import InstagramFlavour


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it in one line."""


def _numbers(listed: str) -> list[int]:
    """Ids separated by commas (or semicolons); ValueError names the first that is not one."""
    numbers = []
    for part in (part.strip() for part in listed.replace(";", ",").split(",")):
        if not part:
            continue
        try:
            numbers.append(int(part))
        except ValueError:
            raise ValueError(f"must be numbers separated by commas, not {part!r}") from None
    return numbers


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """MEDIA_PUBLIC_STORE parsed: the bucket and the key prefix ("" or ending in "/")."""

    bucket: str
    prefix: str


def parse_store_url(url: str) -> StoreLocation:
    """`s3://bucket/prefix`; ValueError says in one line what is wrong."""
    scheme, separator, rest = url.partition("://")
    if scheme.lower() != "s3" or not separator:
        raise ValueError(f"must be s3://bucket/prefix, not {url!r}")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(
            f"{bucket!r} is not a bucket name (3-63 lower-case letters, digits, dots, hyphens)"
        )
    prefix = prefix.strip("/")
    return StoreLocation(bucket=bucket, prefix=f"{prefix}/" if prefix else "")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    bot_token: SecretStr | None = None
    # One team chat, or several separated by commas: `-100123,-100456`. A forum's chat
    # may name the topic its queue lives in: `-100123:55`.
    telegram_chat_id: Annotated[tuple[int, ...], NoDecode] = ()
    # chat id -> topic (message_thread_id), from TELEGRAM_CHAT_ID's `:55` suffixes.
    chat_topics: Annotated[dict[int, int], NoDecode] = Field(default_factory=dict)
    telegram_api_url: str | None = None
    admin_user_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    # Empty means every member of the team chat may press the queue buttons.
    allowed_user_ids: Annotated[frozenset[int], NoDecode] = frozenset()

    database_url: str | None = None
    data_dir: Path = Path(".data")
    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_max_overflow: int = Field(default=5, ge=0, le=100)
    db_pool_recycle_seconds: int = Field(default=240, ge=10)
    db_pool_pre_ping: bool = False
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    db_command_timeout_seconds: float = Field(default=10.0, gt=0)
    # Transaction-mode poolers (PgBouncer, Neon's "-pooler" endpoint) cannot keep
    # named prepared statements across transactions.
    db_pgbouncer: bool = False
    db_application_name: str = "storyqueue"

    media_dir: Path = Path("media")
    media_public_base_url: str | None = None
    # s3://bucket/prefix (AWS S3, R2, B2, MinIO): Auto Post uploads each prepared file
    # there and hands Instagram a presigned URL. Endpoint, region and keys come from the
    # standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...) as boto3 reads them.
    media_public_store: str | None = None
    # Auto Post hands Instagram a prepared copy (JPEG photos framed 9:16, videos within the
    # Story limits), cached under MEDIA_DIR/.storyqueue/prepared/; off: the files as they are.
    media_preparation: bool = True
    instagram_user_id: str | None = None
    instagram_access_token: SecretStr | None = None
    instagram_graph_url: str = "https://graph.facebook.com/v21.0"
    # The Content Publishing guide's pace: a container's status once a minute, at most 5 minutes.
    instagram_publish_timeout_seconds: float = Field(default=300.0, gt=0)
    instagram_poll_interval_seconds: float = Field(default=60.0, gt=0)
    # How often rows whose Auto Post outcome is unknown are checked with Instagram.
    autopost_sweep_interval_seconds: float = Field(default=15.0, gt=0)
    # Unset: derived from INSTAGRAM_GRAPH_URL (graph.instagram.com means Instagram Login).
    instagram_token_flavour: InstagramFlavour | None = None
    # Several chats, several accounts: a TOML file mapping chat ids to accounts.
    instagram_accounts_file: Path | None = None
    instagram_care_interval_seconds: float = Field(default=3600.0, gt=0)
    # How often live Stories are listed; each one's insights are read hourly and in its last hour.
    story_results_interval_seconds: float = Field(default=600.0, gt=0)
    # How often each chat's runway is checked against its warning threshold.
    runway_check_interval_seconds: float = Field(default=3600.0, gt=0)

    log_format: LogFormat = LogFormat.CONSOLE
    log_level: str = "INFO"
    scheduler_interval_seconds: float = Field(default=60.0, gt=0)
    # Chats claimed and delivered at once in a tick; the rest wait their turn, not a tick.
    scheduler_concurrency: int = Field(default=4, ge=1, le=64)
    heartbeat_max_age_seconds: float = Field(default=300.0, gt=0)
    # A queue row still `sending` after this long was left by a crash.
    send_stuck_after_seconds: float = Field(default=300.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)

    @field_validator("admin_user_ids", "allowed_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(_numbers(value))
        if isinstance(value, int):
            return frozenset({value})
        return value

    @model_validator(mode="before")
    @classmethod
    def _topics_of_chats(cls, data: Any) -> Any:
        """`-100123:55` is the chat -100123 whose queue lives in topic 55."""
        if not isinstance(data, dict):
            return data
        value = data.get("telegram_chat_id")
        if not isinstance(value, str) or ":" not in value:
            return data
        chats: list[str] = []
        topics: dict[int, int] = {}
        for part in value.replace(";", ",").split(","):
            chat, _, topic = part.strip().partition(":")
            if not chat:
                continue
            chats.append(chat)
            if topic:
                if not topic.strip().isascii() or not topic.strip().isdigit():
                    raise ValueError(
                        f"TELEGRAM_CHAT_ID: the topic of {chat} must be a number ({part.strip()})"
                    )
                topics[int(chat)] = int(topic)
        return {**data, "telegram_chat_id": ",".join(chats), "chat_topics": topics}

    @field_validator("telegram_chat_id", mode="before")
    @classmethod
    def _split_chat_ids(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, int):
            return (value,)
        if isinstance(value, str):
            value = _numbers(value)
        if isinstance(value, list | tuple | frozenset | set):
            # Order kept, duplicates dropped: the first chat is the default for `index`.
            return tuple(dict.fromkeys(int(item) for item in value))
        return value

    @field_validator("media_public_store")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parse_store_url(value)  # raises ValueError naming what is wrong
        return value

    @model_validator(mode="after")
    def _one_media_host(self) -> Settings:
        if self.media_public_store and self.media_public_base_url:
            raise ValueError(
                "MEDIA_PUBLIC_STORE and MEDIA_PUBLIC_BASE_URL are both set; keep only one"
            )
        return self

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if not value:
            return None
        for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://"):
            if value.startswith(prefix):
                value = "postgresql+asyncpg://" + value[len(prefix) :]
        if not value.startswith("postgresql+asyncpg://"):
            raise ValueError("must be a postgresql:// URL")
        # Connection strings copied from Neon and others carry libpq's options,
        # which asyncpg does not take: sslmode becomes ssl, channel_binding goes.
        url = make_url(value)
        query = dict(url.query)
        if "sslmode" in query:
            query["ssl"] = query.pop("sslmode")
        query.pop("channel_binding", None)
        return url.set(query=query).render_as_string(hide_password=False)

    @property
    def chat_ids(self) -> tuple[int, ...]:
        """Every team chat this process serves, in the order configured."""
        # `or`: a copy made without validation (model_copy) may hold None.
        return self.telegram_chat_id or ()

    def serves(self, chat_id: int) -> bool:
        return chat_id in self.chat_ids

    def instagram_flavour_for(self, graph_url: str) -> InstagramFlavour:
        """The configured flavour, else the one the Graph API host implies."""
        if self.instagram_token_flavour is not None:
            return self.instagram_token_flavour
        if "graph.instagram.com" in graph_url.lower():
            return InstagramFlavour.INSTAGRAM
        return InstagramFlavour.FACEBOOK

    @property
    def media_public_location(self) -> str | None:
        """Where Instagram fetches Auto Post media from: the store or the base URL (or None)."""
        return self.media_public_store or self.media_public_base_url

    @property
    def instagram_configured(self) -> bool:
        return bool(
            self.instagram_user_id and self.instagram_access_token and self.media_public_location
        )

    def require_for_run(self) -> None:
        """Raise ConfigError naming every setting the bot cannot run without."""
        missing = [
            name
            for name, value in (
                ("BOT_TOKEN", self.bot_token),
                ("TELEGRAM_CHAT_ID", self.telegram_chat_id),
            )
            if not value or (isinstance(value, SecretStr) and not value.get_secret_value())
        ]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} must be set to run the bot (environment or .env)"
            )


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one line that names the setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{name} (environment or .env): {first['msg']}{more}") from None
    except UnicodeDecodeError as error:
        # pydantic-settings reads `.env` as UTF-8 before any value is validated.
        raise ConfigError(f".env: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except SettingsError as error:
        raise ConfigError(f"settings (environment or .env): {error}") from None
