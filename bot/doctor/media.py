"""The doctor's media checks: MEDIA_DIR, each chat's indexed library, and the public media URL."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.database import Database
from bot.doctor import timeouts
from bot.doctor.report import Finding, failed, passed, short, warned
from db.models import MediaItem
from db.repositories.media import MediaRepository
from db.retry import Idempotent, in_transaction


def media_dir_finding(settings: Settings) -> Finding:
    folder = settings.media_dir
    try:
        is_folder = folder.is_dir()
    except OSError as error:  # stat() refused: no permission on a parent, a name too long
        return failed(
            "media",
            f"MEDIA_DIR {folder} cannot be looked at ({error.strerror or error})",
            "point MEDIA_DIR at a folder this user can reach (read and search its parents)",
        )
    if not is_folder:
        return failed(
            "media", f"MEDIA_DIR {folder} is not a folder", "create it, or point MEDIA_DIR at one"
        )
    if not os.access(folder, os.R_OK | os.X_OK):
        return failed(
            "media",
            f"MEDIA_DIR {folder} is not readable by this user",
            "fix its permissions (the bot only reads it)",
        )
    return passed("media", f"MEDIA_DIR {folder} is readable")


async def library_finding(
    database: Database, chat_id: int, media_dir: Path
) -> tuple[Finding, str | None]:
    async def counts(session: AsyncSession) -> tuple[int, int, int, str | None]:
        media = MediaRepository(session)
        total, _ = await media.library_counts(chat_id)
        eligible = await media.count_eligible(chat_id)
        set_aside = len(await media.set_aside_items(chat_id))
        path = await session.scalar(
            select(func.min(MediaItem.file_path)).where(
                MediaItem.chat_id == chat_id, MediaItem.is_active
            )
        )
        return total, eligible, set_aside, path

    subject = f"library {chat_id}"
    try:
        async with asyncio.timeout(timeouts.whole_check()):
            total, eligible, set_aside, path = await in_transaction(
                database.sessions, counts, repeat=Idempotent("reads only"), operation="check"
            )
    except Exception as error:
        return failed(subject, f"could not be counted ({short(error)})", "run check again"), None
    if not total:
        return warned(subject, "no media indexed", "run `python -m bot index`"), None
    if path is not None and not _is_file(media_dir / path):
        # Stored paths are relative to MEDIA_DIR: the bot would send (and publish) nothing.
        return warned(
            subject,
            f"{total} item(s) indexed, but {path} is not found under MEDIA_DIR {media_dir}",
            "stored paths are relative to MEDIA_DIR: run `python -m bot index DIR --chat ID` "
            "with DIR inside MEDIA_DIR (moved files keep their history)",
        ), None
    aside = f", {set_aside} set aside (`/queue` lists them)" if set_aside else ""
    if not eligible:
        return warned(
            subject,
            f"{total} item(s) indexed, none eligible now (all recently posted, locked, queued "
            f"or set aside){aside}",
            "add media and run `python -m bot index`, or wait for locks to expire"
            + (", or fix the files set aside and index again (or ↩️ Put back)" if set_aside else ""),
        ), path
    return passed(subject, f"{total} item(s) indexed, {eligible} eligible now{aside}"), path


async def check_media_url(http: httpx.AsyncClient, url: str) -> Finding:
    """Instagram fetches each Story from MEDIA_PUBLIC_BASE_URL: one file must answer."""
    fix = (
        "serve MEDIA_DIR publicly over HTTPS at MEDIA_PUBLIC_BASE_URL"
        " (same relative paths); Instagram fetches each Story from there"
    )
    try:
        async with asyncio.timeout(timeouts.whole_check()):
            response = await http.head(url)
    except (httpx.HTTPError, TimeoutError) as error:
        return failed("media url", f"HEAD {url} did not answer ({type(error).__name__})", fix)
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    if response.is_success and kind.startswith(("image/", "video/")):
        return passed("media url", f"HEAD {url}: {response.status_code} {kind}")
    return failed(
        "media url", f"HEAD {url}: {response.status_code} {kind or 'no content type'}", fix
    )


def _is_file(path: Path) -> bool:
    """False also when stat() is refused: the media line says why."""
    try:
        return path.is_file()
    except OSError:
        return False


def first_media_file(root: Path) -> str | None:
    try:
        if not root.is_dir():
            return None
        for path in root.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                return path.relative_to(root).as_posix()
    except OSError:  # the media line already says MEDIA_DIR cannot be looked at
        return None
    return None
