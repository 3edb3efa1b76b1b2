"""`python -m bot [run|migrate|check|index]`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.logging import configure_logging

EXIT_CONFIG = 2
EXIT_FAILED = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the bot: long polling and the scheduler (default)")
    commands.add_parser("migrate", help="bring the database schema to the latest revision")
    check = commands.add_parser(
        "check", help="diagnose settings, Telegram, chats, database, media and Instagram"
    )
    check.add_argument(
        "--live",
        action="store_true",
        help="liveness probe: settings, database, schema and a recent scheduler tick only",
    )
    index = commands.add_parser("index", help="index a media folder into the library")
    index.add_argument("directory", type=Path, nargs="?", help="media root (default MEDIA_DIR)")
    index.add_argument(
        "--chat", type=int, help="the chat whose library this is (required with several chats)"
    )
    return parser


async def _migrate(settings: Settings) -> int:
    from bot.database import open_database
    from db import migrate

    async with open_database(settings) as database:
        before = await migrate.current_revision(database.engine)
        await migrate.upgrade(database.engine)
        after = await migrate.current_revision(database.engine)
    print("schema already at head" if before == after else f"schema migrated {before} -> {after}")
    return 0


def _index_chat(settings: Settings, chat_id: int | None) -> int:
    """The chat whose library `index` builds: --chat, or the only configured chat."""
    chats = settings.chat_ids
    if chat_id is not None:
        if chats and chat_id not in chats:
            listed = ", ".join(str(chat) for chat in chats)
            raise ConfigError(f"--chat {chat_id} is not in TELEGRAM_CHAT_ID ({listed})")
        return chat_id
    if not chats:
        raise ConfigError("TELEGRAM_CHAT_ID must be set, or pass --chat")
    if len(chats) > 1:
        raise ConfigError(
            f"TELEGRAM_CHAT_ID lists {len(chats)} chats: pass --chat ID to say whose library "
            "this folder is"
        )
    return chats[0]


async def _index(settings: Settings, directory: Path | None, chat_id: int | None) -> int:
    from bot.database import open_database
    from bot.services.chats import ChatDirectory
    from bot.services.library import LibraryIndexer, OutsideMediaDirError, Progress, stored_prefix
    from db import migrate

    chat = _index_chat(settings, chat_id)
    root = directory or settings.media_dir
    if not root.is_dir():
        print(f"index failed: {root} is not a folder", file=sys.stderr)
        return EXIT_FAILED
    try:
        # Refused before the database is opened: nothing is half-written.
        stored_prefix(root, settings.media_dir)
    except OutsideMediaDirError as error:
        print(f"index refused: {error}", file=sys.stderr)
        return EXIT_CONFIG
    async with open_database(settings) as database:
        await migrate.upgrade(database.engine)
        # A group Telegram upgraded: its library lives under the supergroup's id now.
        moves = ChatDirectory(database.sessions, (chat,))
        await moves.load()
        if moves.resolve(chat) != chat:
            print(
                f"chat {chat} became the supergroup {moves.resolve(chat)}: indexing for it",
                file=sys.stderr,
            )
            chat = moves.resolve(chat)
        indexer = LibraryIndexer(
            database.sessions,
            local_api=bool(settings.telegram_api_url),
            progress=lambda total: Progress(total, enabled=sys.stderr.isatty()),
        )
        report = await indexer.index(root, chat, settings.media_dir)
    for line in report.per_file():
        print(line)
    print(report.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    command = arguments.command or "run"
    try:
        settings = load_settings()
        if command == "run":
            settings.require_for_run()
        from bot.services.accounts.config import load_account_configs

        accounts = load_account_configs(settings) if command in ("run", "check") else []
    except ConfigError as error:
        print(f"storyqueue: config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    secrets = [
        s.get_secret_value() for s in (settings.bot_token, settings.instagram_access_token) if s
    ]
    secrets += [account.token for account in accounts]
    # Tokens stored or refreshed later reach the same redactor (bot.app's on_secret).
    redactor = configure_logging(settings.log_level, settings.log_format, secrets)

    from db.embedded import exit_on_signals

    try:
        if command == "run":
            from bot.runner import run

            return asyncio.run(run(settings, redactor))
        exit_on_signals()
        if command == "migrate":
            return asyncio.run(_migrate(settings))
        if command == "check":
            from bot.doctor import check

            return asyncio.run(check(settings, live=arguments.live))
        if command == "index":
            return asyncio.run(_index(settings, arguments.directory, arguments.chat))
    except ConfigError as error:
        print(f"storyqueue: config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0
    raise AssertionError(command)


if __name__ == "__main__":
    sys.exit(main())
