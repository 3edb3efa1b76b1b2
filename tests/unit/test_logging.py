"""One logging pipeline, JSON on request, and the token never printed."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from bot.config import LogFormat
from bot.logging import configure_logging

TOKEN = "123456789:AAE" + "x" * 32


@pytest.fixture(autouse=True)
def _restore_logging() -> None:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def test_json_lines_for_ours_and_stdlib_and_no_token(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", LogFormat.JSON, secrets=[TOKEN])
    structlog.get_logger("ours").info("hello", url=f"https://api.telegram.org/bot{TOKEN}/getMe")
    logging.getLogger("aiogram.dispatcher").warning("request to bot%s failed", TOKEN)
    logging.getLogger("sqlalchemy.engine").error("boom")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert next(line["event"] for line in lines) == "hello"
    assert {line["logger"] for line in lines} == {"ours", "aiogram.dispatcher", "sqlalchemy.engine"}
    assert all(TOKEN not in json.dumps(line) for line in lines)
    assert "[REDACTED]" in lines[0]["url"]


def test_token_shaped_strings_are_scrubbed_even_when_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", LogFormat.CONSOLE)
    logging.getLogger("aiohttp").error("GET /bot%s/getUpdates", TOKEN)
    assert TOKEN not in capsys.readouterr().err


@pytest.mark.parametrize("log_format", [LogFormat.CONSOLE, LogFormat.JSON])
def test_a_token_inside_a_traceback_is_redacted(
    capsys: pytest.CaptureFixture[str], log_format: LogFormat
) -> None:
    """The console renderer formats the traceback itself, after the per-field redactor."""
    secret = "EAAGsecret-instagram-token"
    configure_logging("INFO", log_format, secrets=[secret])
    try:
        raise RuntimeError(f"request failed: access_token={secret} bot{TOKEN}")
    except RuntimeError:
        structlog.get_logger("ours").exception("call.failed")
        logging.getLogger("aiohttp.client").exception("stdlib call failed")
    err = capsys.readouterr().err
    assert "RuntimeError" in err and "[REDACTED]" in err
    assert secret not in err and TOKEN not in err
