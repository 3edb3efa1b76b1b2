"""Indexing: idempotent, moves keep history, bad files skipped with a reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.services.library import LibraryIndexer, OutsideMediaDirError

# The doctor's fixture and helpers, shared.
from tests.helpers.check import line_of, run_check
from tests.helpers.support import (
    OTHER_CHAT,
    TEAM_CHAT,
    TestApp,
    command_env,
    fetch_all,
    seed_chat,
    seed_media,
)

JPEG = b"\xff\xd8\xff\xe0"
PNG = b"\x89PNG\r\n\x1a\n"
MP4 = b"\x00\x00\x00\x18ftypmp42"


def _write(root: Path, relative: str, header: bytes, body: bytes = b"x" * 100) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + body)
    return path


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    _write(root, "food/pasta.jpg", JPEG, b"pasta")
    _write(root, "food/pizza.png", PNG, b"pizza")
    _write(root, "travel/beach.mp4", MP4, b"beach")
    _write(root, "loose.jpeg", JPEG, b"loose")
    _write(root, "notes.txt", b"not media")
    return root


async def _rows(app: TestApp) -> dict[str, tuple]:
    rows = await fetch_all(
        app.sessions,
        "SELECT id, file_path, category, media_kind, is_active, file_hash FROM media_items",
    )
    return {row.file_path: row for row in rows}


async def test_index_is_idempotent(app: TestApp, library: Path) -> None:
    indexer = LibraryIndexer(app.sessions)
    first = await indexer.index(library, TEAM_CHAT)
    assert (first.indexed, first.updated, first.deactivated, len(first.skipped)) == (4, 0, 0, 0)
    rows = await _rows(app)
    assert {path: (row.category, row.media_kind) for path, row in rows.items()} == {
        "food/pasta.jpg": ("food", "photo"),
        "food/pizza.png": ("food", "photo"),
        "travel/beach.mp4": ("travel", "video"),
        "loose.jpeg": (None, "photo"),
    }
    second = await indexer.index(library, TEAM_CHAT)
    assert (second.indexed, second.updated, second.unchanged) == (0, 0, 4)
    assert await _rows(app) == rows


async def test_a_moved_file_keeps_its_row_and_history(app: TestApp, library: Path) -> None:
    indexer = LibraryIndexer(app.sessions)
    await indexer.index(library, TEAM_CHAT)
    before = (await _rows(app))["food/pasta.jpg"]
    async with app.sessions() as session, session.begin():
        from sqlalchemy import text

        await session.execute(
            text(
                "INSERT INTO posting_history (media_item_id, chat_id, status,"
                " success) VALUES (:m, :c, 'posted', true)"
            ),
            {"m": before.id, "c": TEAM_CHAT},
        )
    (library / "italian").mkdir()
    os.rename(library / "food/pasta.jpg", library / "italian/carbonara.jpg")

    report = await indexer.index(library, TEAM_CHAT)

    assert (report.moved, report.indexed, report.deactivated) == (1, 0, 0)
    after = (await _rows(app))["italian/carbonara.jpg"]
    assert after.id == before.id and after.category == "italian" and after.is_active
    assert "food/pasta.jpg" not in await _rows(app)


async def test_a_vanished_file_is_deactivated_and_comes_back(app: TestApp, library: Path) -> None:
    indexer = LibraryIndexer(app.sessions)
    await indexer.index(library, TEAM_CHAT)
    saved = (library / "loose.jpeg").read_bytes()
    (library / "loose.jpeg").unlink()
    assert (await indexer.index(library, TEAM_CHAT)).deactivated == 1
    assert not (await _rows(app))["loose.jpeg"].is_active
    (library / "loose.jpeg").write_bytes(saved)
    assert (await indexer.index(library, TEAM_CHAT)).updated == 1
    assert (await _rows(app))["loose.jpeg"].is_active


async def test_changed_content_is_rehashed(app: TestApp, library: Path) -> None:
    indexer = LibraryIndexer(app.sessions)
    await indexer.index(library, TEAM_CHAT)
    old_hash = (await _rows(app))["food/pizza.png"].file_hash
    _write(library, "food/pizza.png", PNG, b"a different pizza, longer")
    assert (await indexer.index(library, TEAM_CHAT)).updated == 1
    assert (await _rows(app))["food/pizza.png"].file_hash != old_hash


async def test_bad_files_are_skipped_with_a_reason(app: TestApp, library: Path) -> None:
    _write(library, "bad/renamed.jpg", b"GIF89a")  # a GIF pretending to be a JPEG
    (library / "bad/empty.png").write_bytes(b"")
    huge = library / "bad/huge.jpg"
    with open(huge, "wb") as handle:
        handle.write(JPEG)
        handle.truncate(11 * 1024 * 1024)  # sparse: over the 10 MB photo limit
    unreadable = _write(library, "bad/locked.jpg", JPEG)
    unreadable.chmod(0)

    report = await LibraryIndexer(app.sessions).index(library, TEAM_CHAT)

    reasons = dict(report.skipped)
    assert set(reasons) == {"bad/renamed.jpg", "bad/empty.png", "bad/huge.jpg"} | (
        {"bad/locked.jpg"} if os.geteuid() != 0 else set()
    )
    assert "not a valid image/jpeg" in reasons["bad/renamed.jpg"]
    assert reasons["bad/empty.png"] == "empty file"
    assert "over the 10 MB limit" in reasons["bad/huge.jpg"]
    assert report.indexed == 4 + (1 if os.geteuid() == 0 else 0)
    # A local Bot API server lifts the size limit.
    lifted = await LibraryIndexer(app.sessions, local_api=True).index(library, TEAM_CHAT)
    assert "bad/huge.jpg" not in dict(lifted.skipped)


def test_index_command_prints_a_summary(library: Path, database_url: str, tmp_path: Path) -> None:
    env = command_env(database_url, tmp_path, library)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "index", str(library)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip()
        .splitlines()[-1]
        .startswith("indexed 4 / updated 0 / deactivated 0 / skipped 0")
    )


def _index(library: Path, env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "index", str(library), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_with_several_chats_index_needs_the_chat_flag(
    library: Path, database_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TELEGRAM_CHAT_ID": f"{TEAM_CHAT},{OTHER_CHAT}",
        "DATA_DIR": str(tmp_path / "data"),
        "MEDIA_DIR": str(library),
    }
    refused = _index(library, env)
    assert refused.returncode == 2 and "--chat" in refused.stderr

    unknown = _index(library, env, "--chat", "-42")
    assert unknown.returncode == 2 and "TELEGRAM_CHAT_ID" in unknown.stderr

    indexed = _index(library, env, "--chat", str(OTHER_CHAT))
    assert indexed.returncode == 0, indexed.stderr
    assert indexed.stdout.strip().splitlines()[-1].startswith("indexed 4 /")


async def test_each_chat_has_its_own_library(app: TestApp, library: Path) -> None:
    """The same folder indexed for two chats: two libraries, nothing shared."""
    indexer = LibraryIndexer(app.sessions)
    await indexer.index(library, TEAM_CHAT)
    other = await indexer.index(library, OTHER_CHAT)
    assert other.indexed == 4  # nothing of the first chat's rows was reused
    rows = await fetch_all(
        app.sessions, "SELECT chat_id, count(*) AS n FROM media_items GROUP BY chat_id ORDER BY 1"
    )
    assert [tuple(row) for row in rows] == [(OTHER_CHAT, 4), (TEAM_CHAT, 4)]


# -- the path rule: stored paths are relative to MEDIA_DIR -----------------------------------


async def test_a_folder_inside_media_dir_is_stored_relative_to_media_dir(
    app: TestApp, tmp_path: Path
) -> None:
    """`index media/bakery`: paths keep `bakery/`, categories are bakery's own folders."""
    media = tmp_path / "media"
    _write(media, "bakery/cakes/lemon.jpg", JPEG, b"lemon")
    _write(media, "bakery/loaf.jpg", JPEG, b"loaf")
    _write(media, "flowers/roses/red.jpg", JPEG, b"red")

    report = await LibraryIndexer(app.sessions).index(media / "bakery", TEAM_CHAT, media)

    assert report.indexed == 2
    rows = await fetch_all(app.sessions, "SELECT file_path, file_name, category FROM media_items")
    assert sorted(tuple(row) for row in rows) == [
        ("bakery/cakes/lemon.jpg", "lemon.jpg", "cakes"),
        ("bakery/loaf.jpg", "loaf.jpg", None),
    ]


async def test_rows_stored_relative_to_the_indexed_folder_are_found_again_by_hash(
    app: TestApp, tmp_path: Path
) -> None:
    """Rows an older version stored relative to `media/bakery` keep their id and history."""
    media = tmp_path / "media"
    _write(media, "bakery/cakes/lemon.jpg", JPEG, b"lemon")
    indexer = LibraryIndexer(app.sessions)
    await indexer.index(media / "bakery", TEAM_CHAT)  # the old rule: relative to the folder
    [old] = await fetch_all(app.sessions, "SELECT id, file_path FROM media_items")
    assert old.file_path == "cakes/lemon.jpg"

    report = await indexer.index(media / "bakery", TEAM_CHAT, media)

    assert (report.moved, report.indexed, report.deactivated) == (1, 0, 0)
    [new] = await fetch_all(app.sessions, "SELECT id, file_path, is_active FROM media_items")
    assert (new.id, new.file_path, new.is_active) == (old.id, "bakery/cakes/lemon.jpg", True)


async def test_a_folder_linked_into_media_dir_is_stored_by_its_path_inside_it(
    app: TestApp, tmp_path: Path
) -> None:
    """`media/bakery` is a symlink to another disk: the bot reads it through the link too."""
    media = tmp_path / "media"
    media.mkdir()
    _write(tmp_path / "disk", "bakery/cakes/lemon.jpg", JPEG, b"lemon")
    (media / "bakery").symlink_to(tmp_path / "disk" / "bakery")

    report = await LibraryIndexer(app.sessions).index(media / "bakery", TEAM_CHAT, media)

    assert report.indexed == 1
    [row] = await fetch_all(app.sessions, "SELECT file_path, category FROM media_items")
    assert (row.file_path, row.category) == ("bakery/cakes/lemon.jpg", "cakes")
    assert (media / row.file_path).is_file()
    # `bakery/..` is the link's parent on the other disk, not MEDIA_DIR: refused.
    with pytest.raises(OutsideMediaDirError):
        await LibraryIndexer(app.sessions).index(media / "bakery" / "..", TEAM_CHAT, media)


async def test_a_folder_whose_own_name_is_not_utf8_is_skipped_not_half_written(
    app: TestApp, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    folder = Path(os.fsdecode(os.path.join(os.fsencode(media), b"caf\xe9")))
    _write(folder, "cakes/lemon.jpg", JPEG, b"lemon")

    report = await LibraryIndexer(app.sessions).index(folder, TEAM_CHAT, media)

    assert report.indexed == 0
    [(path, reason)] = report.skipped
    assert "caf" in path and "not valid UTF-8" in reason
    assert await fetch_all(app.sessions, "SELECT file_path FROM media_items") == []


def test_a_folder_outside_media_dir_is_refused_in_one_line(
    library: Path, database_url: str, tmp_path: Path
) -> None:
    media_dir = tmp_path / "elsewhere"
    media_dir.mkdir()
    env = command_env(database_url, tmp_path, media_dir)
    refused = _index(library, env)
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert "MEDIA_DIR" in line and str(media_dir) in line and "Traceback" not in refused.stderr


async def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_indexed(
    library: Path, database_url: str, tmp_path: Path, session_factory: Any
) -> None:
    (library / "food").mkdir(exist_ok=True)
    bad = os.path.join(os.fsencode(library / "food"), b"\xff.jpg")
    with open(bad, "wb") as handle:
        handle.write(JPEG + b"bad name")
    env = command_env(database_url, tmp_path, library)
    result = _index(library, env)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip()
        .splitlines()[-1]
        .startswith("indexed 4 / updated 0 / deactivated 0 / skipped 1")
    )
    output = result.stdout + result.stderr
    assert "not valid UTF-8" in output and "Traceback" not in output
    rows = await fetch_all(session_factory, "SELECT file_path FROM media_items")
    assert len(rows) == 4


async def test_check_warns_when_a_stored_path_is_not_under_media_dir(
    healthy: Settings,
    session_factory: Any,
) -> None:
    await seed_chat(session_factory)
    # As an older version stored `index media/bakery`: relative to the folder, not MEDIA_DIR.
    await seed_media(session_factory, file_path="cakes/lemon.jpg")
    code, lines = await run_check(healthy)
    line = line_of(lines, f"library {TEAM_CHAT}")
    assert code == 0 and line.startswith("WARN ") and "not found under MEDIA_DIR" in line
    assert "index DIR --chat ID" in "\n".join(lines)


async def test_check_counts_the_items_set_aside(
    healthy: Settings,
    session_factory: Any,
) -> None:
    await seed_chat(session_factory)
    await seed_media(session_factory, count=2)
    await fetch_all(
        session_factory,
        "UPDATE media_items SET set_aside_at = now(), set_aside_reason = 'x' RETURNING id",
    )
    code, lines = await run_check(healthy)
    line = line_of(lines, f"library {TEAM_CHAT}")
    assert code == 0 and line.startswith("WARN ") and "none eligible" in line
    assert "2 set aside" in line and "Put back" in "\n".join(lines)
