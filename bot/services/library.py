"""Indexing the media library: walk, validate, hash in chunks, upsert (docs/architecture.md §5)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.media_prep import assess
from db.repositories import ChatSettingsRepository, MediaRepository
from db.vocabulary import MediaKind

logger = structlog.get_logger(__name__)

MB = 1024 * 1024
HASH_CHUNK = 1 * MB
BATCH = 500

KINDS: dict[str, tuple[MediaKind, str]] = {
    ".jpg": (MediaKind.PHOTO, "image/jpeg"),
    ".jpeg": (MediaKind.PHOTO, "image/jpeg"),
    ".png": (MediaKind.PHOTO, "image/png"),
    ".webp": (MediaKind.PHOTO, "image/webp"),
    ".gif": (MediaKind.VIDEO, "image/gif"),
    ".mp4": (MediaKind.VIDEO, "video/mp4"),
    ".mov": (MediaKind.VIDEO, "video/quicktime"),
}
# The public Bot API's upload limits; a local Bot API server takes up to 2000 MB.
PUBLIC_LIMITS = {MediaKind.PHOTO: 10 * MB, MediaKind.VIDEO: 50 * MB}
LOCAL_LIMIT = 2000 * MB


def _looks_like(header: bytes, mime: str) -> bool:
    """Magic bytes: a renamed or truncated file is caught before Telegram refuses it."""
    if mime == "image/jpeg":
        return header.startswith(b"\xff\xd8\xff")
    if mime == "image/png":
        return header.startswith(b"\x89PNG\r\n\x1a\n")
    if mime == "image/gif":
        return header.startswith((b"GIF87a", b"GIF89a"))
    if mime == "image/webp":
        return header.startswith(b"RIFF") and header[8:12] == b"WEBP"
    # MP4 and QuickTime: a box header whose type is a known top-level atom.
    return header[4:8] in {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


@dataclass
class IndexReport:
    indexed: int = 0
    updated: int = 0
    unchanged: int = 0
    moved: int = 0
    deactivated: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Each file read this run: whether Instagram takes it after preparation, and why not.
    autopost: list[tuple[str, str]] = field(default_factory=list)
    manual_only: int = 0

    def per_file(self) -> list[str]:
        return [f"{path}: {verdict}" for path, verdict in self.autopost]

    def summary(self) -> str:
        return (
            f"indexed {self.indexed} / updated {self.updated + self.moved} / "
            f"deactivated {self.deactivated} / skipped {len(self.skipped)}"
            f" (unchanged {self.unchanged})"
            f"; of {len(self.autopost)} read, {self.manual_only} manual only (no Auto Post)"
        )


class OutsideMediaDirError(ValueError):
    """The folder to index is not MEDIA_DIR or inside it: its paths could not be sent."""


@dataclass(frozen=True, slots=True)
class FoundFile:
    # Relative to MEDIA_DIR: what is stored, sent from and published from.
    relative: str
    # The first-level folder of the folder being indexed.
    category: str | None
    size: int
    mtime: datetime


def stored_prefix(root: Path, media_dir: Path) -> str:
    """Where root sits inside media_dir ("" for media_dir itself), as MEDIA_DIR/<prefix> reads it.

    A folder reached through a symlink inside MEDIA_DIR counts as inside: the bot
    reads it through the same link.
    """
    real_root = root.resolve()
    try:
        return _prefix(real_root.relative_to(media_dir.resolve()))
    except ValueError:
        pass
    try:
        inside = Path(os.path.normpath(root.absolute())).relative_to(
            os.path.normpath(media_dir.absolute())
        )
    except ValueError:
        inside = None
    # `link/..` is not MEDIA_DIR once link points elsewhere: trust only what resolves back.
    if inside is None or (media_dir / inside).resolve() != real_root:
        raise OutsideMediaDirError(
            f"{root} is not inside MEDIA_DIR ({media_dir}): stored paths are relative to "
            "MEDIA_DIR, so index a folder inside it, or point MEDIA_DIR at a folder that holds it"
        )
    return _prefix(inside)


def _prefix(inside: Path) -> str:
    return "" if inside == Path(".") else inside.as_posix() + "/"


def _storable(relative: str) -> bool:
    """A name that is not valid UTF-8 (kept by Python as surrogates) cannot be stored."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def walk(
    root: Path, media_dir: Path | None = None, skipped: list[tuple[str, str]] | None = None
) -> list[FoundFile]:
    """Every file with a known extension under root (sorted, POSIX paths relative to media_dir).

    Categories are the first-level folders of root. A file whose name cannot be
    stored is added to `skipped` with the reason, and the walk goes on.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"media folder not found: {root}")
    prefix = stored_prefix(root, media_dir or root)
    found: list[FoundFile] = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or Path(name).suffix.lower() not in KINDS:
                continue
            path = Path(directory, name)
            within_root = path.relative_to(root).as_posix()
            # The indexed folder's own name (the prefix) is stored too.
            if not _storable(prefix + within_root):
                shown = repr(os.fsencode(prefix + within_root))
                reason = "the file name is not valid UTF-8: rename the file"
                logger.warning("index.skipped", path=shown, reason=reason)
                if skipped is not None:
                    skipped.append((shown, reason))
                continue
            try:
                stat = path.stat()
            except OSError as error:
                # Gone or unreadable since the listing: the next index run sees it again.
                logger.warning("index.unreadable", path=str(path), reason=str(error))
                continue
            parts = within_root.split("/")
            found.append(
                FoundFile(
                    relative=prefix + within_root,
                    category=parts[0] if len(parts) > 1 else None,
                    size=stat.st_size,
                    mtime=datetime.fromtimestamp(stat.st_mtime, UTC),
                )
            )
    return found


def inspect_file(root: Path, found: FoundFile, *, local_api: bool) -> dict[str, Any]:
    """Validate and hash one file under root, MEDIA_DIR (blocking; runs in a thread).

    Raises ValueError to skip it.
    """
    kind, mime = KINDS[Path(found.relative).suffix.lower()]
    if found.size == 0:
        raise ValueError("empty file")
    limit = LOCAL_LIMIT if local_api else PUBLIC_LIMITS[kind]
    if found.size > limit:
        raise ValueError(
            f"{found.size / MB:.1f} MB is over the {limit // MB} MB limit for a {kind}"
        )
    digest = hashlib.sha256()
    try:
        with open(root / found.relative, "rb") as handle:
            header = handle.read(16)
            if not _looks_like(header, mime):
                raise ValueError(f"not a valid {mime} file")
            digest.update(header)
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise ValueError(f"unreadable: {error.strerror or error}") from None
    return {
        "file_path": found.relative,
        "file_name": found.relative.rsplit("/", 1)[-1],
        "file_size": found.size,
        "file_mtime": found.mtime,
        "file_hash": digest.hexdigest(),
        "media_kind": kind,
        "mime_type": mime,
        "category": found.category,
    }


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._total = max(total, 1)
        self._enabled = enabled
        self._done = 0

    def advance(self) -> None:
        self._done += 1
        if self._enabled and (self._done % 50 == 0 or self._done == self._total):
            filled = int(30 * self._done / self._total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self._done}/{self._total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self._enabled:
            sys.stderr.write("\n")


class LibraryIndexer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        local_api: bool = False,
        progress: Callable[[int], Progress] | None = None,
    ) -> None:
        self._sessions = sessions
        self._local_api = local_api
        self._progress = progress or (lambda total: Progress(total, enabled=False))

    async def index(self, root: Path, chat_id: int, media_dir: Path | None = None) -> IndexReport:
        """Bring the chat's media rows in line with the files under root; idempotent.

        Stored paths are relative to media_dir (MEDIA_DIR; root itself when not
        given), which root must be or be inside: OutsideMediaDirError otherwise.
        Rows stored before under another root are found again by their hash.
        """
        # Not resolved: a folder linked into MEDIA_DIR keeps its path inside it.
        root = await asyncio.to_thread(root.absolute)
        base = root if media_dir is None else await asyncio.to_thread(media_dir.absolute)
        report = IndexReport()
        files = await asyncio.to_thread(walk, root, base, report.skipped)
        async with self._sessions() as session, session.begin():
            await ChatSettingsRepository(session).ensure(chat_id)
            known = await MediaRepository(session).index_snapshot(chat_id)

        present = {found.relative for found in files}
        changed: list[dict[str, Any]] = []
        # Unchanged files index had not judged yet: (path, why Instagram would refuse it).
        judged: list[tuple[str, str | None]] = []

        async def judge(relative: str, kind: MediaKind) -> str | None:
            """Whether Instagram would take the file after preparation; reported, and why not."""
            verdict = await asyncio.to_thread(assess, base / relative, kind)
            report.autopost.append((relative, verdict.describe()))
            report.manual_only += not verdict.ok
            return verdict.reason

        progress = self._progress(len(files))
        for found in files:
            previous = known.get(found.relative)
            if (
                previous is not None
                and previous[0] == found.size
                and previous[1] == found.mtime
                and previous[3]
            ):
                report.unchanged += 1
                if not previous[4]:
                    # Indexed before index judged files for Instagram: judged now, once.
                    kind = KINDS[Path(found.relative).suffix.lower()][0]
                    judged.append((found.relative, await judge(found.relative, kind)))
                progress.advance()
                continue
            try:
                row = await asyncio.to_thread(inspect_file, base, found, local_api=self._local_api)
            except ValueError as error:
                report.skipped.append((found.relative, str(error)))
                logger.warning("index.skipped", path=found.relative, reason=str(error))
                progress.advance()
                continue
            # A new or changed file: (re)assessed, so a fixed file loses its old refusal.
            row["autopost_refusal"] = await judge(found.relative, row["media_kind"])
            row["autopost_assessed_at"] = datetime.now(UTC)
            changed.append(row)
            progress.advance()
        progress.close()

        # A vanished path whose hash reappears elsewhere was moved or renamed:
        # keep its row (and so its history and locks).
        vanished = {
            path: value[2] for path, value in known.items() if path not in present and value[3]
        }
        by_hash = {digest: path for path, digest in vanished.items()}
        moves: list[tuple[str, dict[str, Any]]] = []
        inserts: list[dict[str, Any]] = []
        for row in changed:
            old_path = (
                by_hash.pop(row["file_hash"], None) if row["file_path"] not in known else None
            )
            if old_path is not None:
                del vanished[old_path]
                moves.append((old_path, row))
            elif row["file_path"] in known:
                report.updated += 1
                inserts.append(row)
            else:
                report.indexed += 1
                inserts.append(row)

        async with self._sessions() as session, session.begin():
            media = MediaRepository(session)
            for old_path, row in moves:
                await media.move(chat_id, old_path, row)
            report.moved = len(moves)
            for start in range(0, len(inserts), BATCH):
                await media.upsert_files(chat_id, inserts[start : start + BATCH])
            report.deactivated = await media.deactivate(chat_id, sorted(vanished))
            await media.set_assessments(chat_id, judged)
        logger.info(
            "index.done",
            chat_id=chat_id,
            **{k: v for k, v in vars(report).items() if k not in {"skipped", "autopost"}},
            skipped=len(report.skipped),
        )
        return report
