"""Malformed configuration, through the real `python -m bot run` and `check`: one line, exit 2.

Each line names the file (or the environment), the key and the problem, and no
traceback is ever printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.support import TEAM_CHAT, TEST_TOKEN


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOT_", "TELEGRAM_", "DATABASE_", "DB_", "LOG_", "ADMIN_"))
    }
    env.update(extra)
    return env


def _run_bot(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=cwd,
        env=_clean_env(cwd),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_without_token_names_it_and_exits_2(tmp_path: Path) -> None:
    result = _run_bot(tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "BOT_TOKEN" in lines[0]
    assert "Traceback" not in result.stderr


def test_invalid_setting_names_it_and_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check"],
        cwd=tmp_path,
        env=_clean_env(tmp_path, DB_POOL_SIZE="lots"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "DB_POOL_SIZE" in result.stderr


def test_empty_values_in_dotenv_count_as_unset(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BOT_TOKEN=\nTELEGRAM_CHAT_ID=\n")
    result = _run_bot(tmp_path)
    assert result.returncode == 2
    assert "BOT_TOKEN and TELEGRAM_CHAT_ID must be set" in result.stderr


ACCOUNT = f'[[account]]\nchat_id = {TEAM_CHAT}\ninstagram_user_id = "17841400000000000"\n'
NOT_UTF8 = b"tok\xff\xfeen"


@dataclass(frozen=True)
class Case:
    """A broken configuration: files it writes in the folder, environment it sets."""

    setup: Callable[[Path], dict[str, str]]
    # Each must appear in the one line (the file's name, the key, the problem).
    says: tuple[str, ...]


def _accounts(text: str | bytes, name: str = "instagram.toml") -> Callable[[Path], dict[str, str]]:
    def setup(folder: Path) -> dict[str, str]:
        path = folder / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text.replace("{folder}", str(folder)))
        (folder / "token.txt").write_text("a-token\n")
        (folder / "latin1.txt").write_bytes(NOT_UTF8)
        return {"INSTAGRAM_ACCOUNTS_FILE": str(path), "MEDIA_PUBLIC_BASE_URL": "https://cdn.test"}

    return setup


def _env(**values: str) -> Callable[[Path], dict[str, str]]:
    return lambda folder: values


def _dotenv(content: bytes) -> Callable[[Path], dict[str, str]]:
    def setup(folder: Path) -> dict[str, str]:
        (folder / ".env").write_bytes(content)
        return {}

    return setup


CASES = {
    "account-not-a-table": Case(_accounts("account = [1]\n"), ("instagram.toml", "account #1")),
    "account-a-string": Case(_accounts('account = "x"\n'), ("instagram.toml", "[[account]]")),
    "token-file-not-utf8": Case(
        _accounts(ACCOUNT + 'token_file = "{folder}/latin1.txt"\n'),
        ("instagram.toml", "token_file", "latin1.txt", "UTF-8"),
    ),
    "token-file-missing": Case(
        _accounts(ACCOUNT + 'token_file = "{folder}/nowhere.txt"\n'),
        ("instagram.toml", "token_file", "nowhere.txt"),
    ),
    "invalid-toml": Case(
        _accounts("[[account]\nchat_id = 1\n"), ("instagram.toml", "not valid TOML")
    ),
    "accounts-file-not-utf8": Case(_accounts(b"chat_id = \xff\n"), ("instagram.toml", "UTF-8")),
    "accounts-file-missing": Case(
        lambda folder: {"INSTAGRAM_ACCOUNTS_FILE": str(folder / "gone.toml")},
        ("INSTAGRAM_ACCOUNTS_FILE", "gone.toml"),
    ),
    "chat-id-not-a-number": Case(
        _accounts('[[account]]\nchat_id = "team"\ninstagram_user_id = "1"\ntoken_env = "T"\n'),
        ("instagram.toml", "account #1", "chat_id"),
    ),
    "user-id-a-list": Case(
        _accounts(
            f'[[account]]\nchat_id = {TEAM_CHAT}\ninstagram_user_id = [1]\ntoken_env = "T"\n'
        ),
        ("instagram.toml", "account #1", "instagram_user_id"),
    ),
    "token-file-a-number": Case(
        _accounts(ACCOUNT + "token_file = 5\n"), ("instagram.toml", "account #1", "token_file")
    ),
    "pool-size-words": Case(_env(DB_POOL_SIZE="lots"), ("DB_POOL_SIZE", "integer")),
    "allowed-ids-words": Case(_env(ALLOWED_USER_IDS="alice,bob"), ("ALLOWED_USER_IDS", "alice")),
    "chat-id-words": Case(_env(TELEGRAM_CHAT_ID="my team"), ("TELEGRAM_CHAT_ID", "my team")),
    "log-format-unknown": Case(_env(LOG_FORMAT="xml"), ("LOG_FORMAT",)),
    "store-not-s3": Case(
        _env(MEDIA_PUBLIC_STORE="https://bucket.example/x"), ("MEDIA_PUBLIC_STORE", "s3://")
    ),
    "store-bad-bucket": Case(
        _env(MEDIA_PUBLIC_STORE="s3://My_Bucket/x"), ("MEDIA_PUBLIC_STORE", "My_Bucket")
    ),
    "store-and-base-url": Case(
        _env(MEDIA_PUBLIC_STORE="s3://bucket/x", MEDIA_PUBLIC_BASE_URL="https://cdn.test/m"),
        ("MEDIA_PUBLIC_STORE", "MEDIA_PUBLIC_BASE_URL", "only one"),
    ),
    "dotenv-not-utf8": Case(_dotenv(b"BOT_TOKEN=\xff\xfe\n"), (".env", "UTF-8")),
}


@pytest.mark.parametrize("command", ["run", "check"])
@pytest.mark.parametrize("name", list(CASES))
def test_bad_configuration_is_one_line_and_exit_2(tmp_path: Path, name: str, command: str) -> None:
    case = CASES[name]
    extra = case.setup(tmp_path)
    env = _clean_env(tmp_path, **{"BOT_TOKEN": TEST_TOKEN, "TELEGRAM_CHAT_ID": str(TEAM_CHAT)})
    env = {k: v for k, v in env.items() if not k.startswith(("INSTAGRAM_", "MEDIA_", "ALLOWED_"))}
    env.update(extra)
    result = subprocess.run(
        [sys.executable, "-m", "bot", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    assert result.returncode == 2, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, output
    for part in case.says:
        assert part in lines[0], (part, lines[0])
