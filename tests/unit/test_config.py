"""Settings: a missing or invalid one is one clear line and exit status 2."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, LogFormat, Settings, load_settings
from bot.database import engine_options
from db.engine import EngineOptions


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "LOUD"),
        ("TELEGRAM_CHAT_ID", "team"),
        ("ADMIN_USER_IDS", "1,two"),
        ("DATABASE_URL", "mysql://x"),
        ("DB_POOL_SIZE", "0"),
    ],
)
def test_each_invalid_value_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings(_env_file=None)


def test_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_USER_IDS", "1, 2,3")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@h/db")
    monkeypatch.setenv("LOG_FORMAT", "json")
    settings = load_settings(_env_file=None)
    assert settings.admin_user_ids == frozenset({1, 2, 3})
    assert settings.database_url == "postgresql+asyncpg://u:p@h/db"
    assert settings.log_format is LogFormat.JSON


def test_a_neon_connection_string_is_accepted_as_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DATABASE_URL",
        "postgresql://alex:pw@ep-cool-1.eu-central-1.aws.neon.tech/neondb"
        "?sslmode=require&channel_binding=require",
    )
    assert load_settings(_env_file=None).database_url == (
        "postgresql+asyncpg://alex:pw@ep-cool-1.eu-central-1.aws.neon.tech/neondb?ssl=require"
    )


def test_require_for_run_names_what_is_missing() -> None:
    settings = Settings(_env_file=None, bot_token="1:x")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="TELEGRAM_CHAT_ID"):
        settings.require_for_run()


def test_instagram_needs_all_three() -> None:
    partial = Settings(_env_file=None, instagram_user_id="1", instagram_access_token="t")  # type: ignore[call-arg]
    assert not partial.instagram_configured
    full = partial.model_copy(update={"media_public_base_url": "https://cdn.example/media"})
    assert full.instagram_configured


@pytest.mark.parametrize(
    ("value", "expected"),
    [("-1001", (-1001,)), ("-1001, -1002,-1003", (-1001, -1002, -1003)), ("-1001,-1001", (-1001,))],
)
def test_chat_ids_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[int, ...]
) -> None:
    monkeypatch.setenv("TELEGRAM_CHAT_ID", value)
    settings = load_settings(_env_file=None)
    assert settings.chat_ids == expected
    assert settings.serves(expected[0]) and not settings.serves(-9)


def test_a_single_chat_id_in_code_still_works() -> None:
    settings = Settings(_env_file=None, telegram_chat_id=-1001)  # type: ignore[call-arg]
    assert settings.chat_ids == (-1001,)


def test_a_chat_id_that_is_not_a_number_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "-1001,team")
    with pytest.raises(ConfigError, match="TELEGRAM_CHAT_ID"):
        load_settings(_env_file=None)


def test_every_engine_option_comes_from_its_db_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "DB_POOL_SIZE": "7",
        "DB_MAX_OVERFLOW": "3",
        "DB_POOL_RECYCLE_SECONDS": "60",
        "DB_POOL_PRE_PING": "true",
        "DB_CONNECT_TIMEOUT_SECONDS": "1.5",
        "DB_COMMAND_TIMEOUT_SECONDS": "2.5",
        "DB_PGBOUNCER": "true",
        "DB_APPLICATION_NAME": "storyqueue-test",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(_env_file=None)

    options = engine_options(settings, "postgresql+asyncpg://u:p@h/db")

    assert options == EngineOptions(
        url="postgresql+asyncpg://u:p@h/db",
        pool_size=7,
        max_overflow=3,
        pool_recycle_seconds=60,
        pool_pre_ping=True,
        connect_timeout_seconds=1.5,
        command_timeout_seconds=2.5,
        application_name="storyqueue-test",
        pgbouncer=True,
    )
