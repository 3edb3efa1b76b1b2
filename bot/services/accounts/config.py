"""Which Instagram account serves which chat, and the token it was configured with.

One chat: INSTAGRAM_USER_ID and INSTAGRAM_ACCESS_TOKEN. Several chats: a TOML file
named by INSTAGRAM_ACCOUNTS_FILE, one `[[account]]` per chat, whose token is read
from an environment variable (`token_env`) or a file (`token_file`), never from
the TOML itself.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import ConfigError, Settings
from db.vocabulary import InstagramFlavour


@dataclass(frozen=True, slots=True)
class AccountConfig:
    chat_id: int
    ig_user_id: str
    token: str = field(repr=False)
    graph_url: str
    flavour: InstagramFlavour

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()


def _read_token(entry: dict[str, Any], where: str) -> str:
    env_name = entry.get("token_env")
    file_name = entry.get("token_file")
    if bool(env_name) == bool(file_name):
        raise ConfigError(f"{where}: give exactly one of token_env or token_file")
    if env_name:
        if not isinstance(env_name, str):
            raise ConfigError(f"{where}: token_env must be the name of an environment variable")
        token = os.environ.get(env_name, "").strip()
        if not token:
            raise ConfigError(f"{where}: environment variable {env_name} is not set")
        return token
    if not isinstance(file_name, str):
        raise ConfigError(f"{where}: token_file must be a path (a string)")
    path = Path(file_name).expanduser()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"{where}: token_file {path} cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{where}: token_file {path} is not UTF-8 text (a token is plain ASCII)"
        ) from None
    if not token:
        raise ConfigError(f"{where}: token_file {path} is empty")
    return token


def _read_accounts_file(path: Path) -> list[dict[str, Any]]:
    """The `[[account]]` tables of the accounts file; ConfigError names what is wrong."""
    where = f"INSTAGRAM_ACCOUNTS_FILE {path}"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{where}: not UTF-8 text (byte {error.start})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML ({error})") from None
    entries = document.get("account", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: account must be [[account]] tables")
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{where} account #{number}: must be an [[account]] table, not {entry!r}"
            )
    return entries


def load_account_configs(settings: Settings) -> list[AccountConfig]:
    """Every configured account, tokens read; ConfigError names what is wrong."""
    served = set(settings.chat_ids)
    env_pair = settings.instagram_user_id or settings.instagram_access_token
    if settings.instagram_accounts_file is None:
        if not (settings.instagram_user_id and settings.instagram_access_token):
            return []
        if len(served) != 1:
            raise ConfigError(
                "INSTAGRAM_USER_ID and INSTAGRAM_ACCESS_TOKEN serve exactly one chat; "
                "with several chats use INSTAGRAM_ACCOUNTS_FILE"
            )
        return [
            AccountConfig(
                chat_id=settings.chat_ids[0],
                ig_user_id=settings.instagram_user_id,
                token=settings.instagram_access_token.get_secret_value(),
                graph_url=settings.instagram_graph_url,
                flavour=settings.instagram_flavour_for(settings.instagram_graph_url),
            )
        ]
    if env_pair:
        raise ConfigError(
            "INSTAGRAM_ACCOUNTS_FILE: set either it or INSTAGRAM_USER_ID/INSTAGRAM_ACCESS_TOKEN"
        )
    path = settings.instagram_accounts_file
    configs: dict[int, AccountConfig] = {}
    for number, entry in enumerate(_read_accounts_file(path), 1):
        where = f"INSTAGRAM_ACCOUNTS_FILE {path} account #{number}"
        chat_id = entry.get("chat_id")
        user_id = entry.get("instagram_user_id")
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            raise ConfigError(f"{where}: chat_id is required and must be a number")
        if not isinstance(user_id, str | int) or isinstance(user_id, bool) or not user_id:
            raise ConfigError(f"{where}: instagram_user_id is required (a string of digits)")
        if served and chat_id not in served:
            raise ConfigError(f"{where}: chat {chat_id} is not in TELEGRAM_CHAT_ID")
        if chat_id in configs:
            raise ConfigError(f"{where}: chat {chat_id} is listed twice")
        graph_url = entry.get("graph_url") or settings.instagram_graph_url
        if not isinstance(graph_url, str):
            raise ConfigError(f"{where}: graph_url must be a URL (a string)")
        configs[chat_id] = AccountConfig(
            chat_id=chat_id,
            ig_user_id=str(user_id),
            token=_read_token(entry, where),
            graph_url=graph_url,
            flavour=settings.instagram_flavour_for(graph_url),
        )
    return list(configs.values())
