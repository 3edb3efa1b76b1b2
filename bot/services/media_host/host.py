"""The seam Auto Post calls: prepare a media file, host it, release it once settled."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import structlog

from bot.services.media_prep import MediaPreparer
from db.vocabulary import Framing, MediaKind

logger = structlog.get_logger(__name__)

_HASH_CHUNK = 1 << 20


class MediaHostError(Exception):
    """The media could not be prepared or put where Instagram fetches it; nothing was created."""


@dataclass(frozen=True, slots=True)
class MediaToHost:
    """One indexed file as Auto Post asks for it: its path under MEDIA_DIR, kind and chat."""

    file_path: str
    kind: MediaKind
    chat_id: int
    # How the chat frames a photo that is not 9:16 (its setting when the 🤖 was pressed).
    framing: Framing = Framing.BLUR


class Prepared(Protocol):
    """What preparation hands over (media-prep's PreparedMedia has this shape)."""

    @property
    def path(self) -> Path: ...
    @property
    def content_type(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...


@dataclass(frozen=True, slots=True)
class PreparedFile:
    path: Path
    content_type: str
    sha256: str
    size: int


# Takes the absolute source file and the item (its kind, and its chat for the framing).
Prepare = Callable[[Path, MediaToHost], Awaitable[Prepared]]


@dataclass(frozen=True, slots=True)
class HostedMedia:
    """A URL Instagram can fetch, and the key that removes what was put there ("" for none)."""

    url: str
    key: str = ""
    # Whether it is a video, as prepared (a GIF becomes a photo); None: the indexed kind says.
    video: bool | None = None


class HostingBackend(Protocol):
    async def put(self, prepared: Prepared) -> HostedMedia: ...
    def placed(self, prepared: Prepared) -> HostedMedia:
        """Where `put` puts it (the key to remove), without putting it."""
        ...

    async def remove(self, hosted: HostedMedia) -> None: ...


def _describe(source: Path) -> PreparedFile:
    digest = hashlib.sha256()
    with source.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    content_type = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
    return PreparedFile(source, content_type, digest.hexdigest(), source.stat().st_size)


def prepared_by(preparer: MediaPreparer) -> Prepare:
    """Media preparation as the host calls it; a file Instagram cannot take is a MediaHostError."""

    async def prepare(source: Path, item: MediaToHost) -> Prepared:
        try:
            return await preparer.prepare(source, item.kind, item.framing)
        except ValueError as error:  # ManualOnlyError, or a file no decoder reads
            raise MediaHostError(f"{item.file_path}: {error}") from None

    return prepare


async def original_unchanged(source: Path, item: MediaToHost) -> Prepared:
    """No preparation: the original file as it is (hashed off the event loop)."""
    return await asyncio.to_thread(_describe, source)


async def served_as_is(source: Path, item: MediaToHost) -> Prepared:
    """No preparation and nothing to upload: the served original needs no reading."""
    content_type = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
    return PreparedFile(source, content_type, sha256="", size=0)


def _holder(item: MediaToHost) -> tuple[int, str]:
    """The item a hosted copy serves (a re-press of the same item is the same holder)."""
    return (item.chat_id, item.file_path)


class MediaHost:
    def __init__(self, backend: HostingBackend, media_dir: Path, prepare: Prepare) -> None:
        self._backend = backend
        self._media_dir = media_dir
        self._prepare = prepare
        # Items with the same prepared content share one object (its key is the content's):
        # the items in this process that were handed it and are not settled yet.
        self._holders: dict[str, set[tuple[int, str]]] = {}

    async def url_for(self, item: MediaToHost) -> HostedMedia:
        """Prepare the item's file and host it; MediaHostError says why not."""
        source = self._media_dir / item.file_path
        try:
            prepared = await self._prepare(source, item)
        except OSError as error:
            raise MediaHostError(f"{item.file_path} could not be read ({error.strerror})") from None
        hosted = replace(
            await self._backend.put(prepared), video=prepared.content_type.startswith("video/")
        )
        if hosted.key:
            self._holders.setdefault(hosted.key, set()).add(_holder(item))
        return hosted

    async def release_item(self, item: MediaToHost) -> None:
        """Release an item's copy when only the item is known (the resolver, after a restart).

        The key follows from the content: the (cached) preparation finds it again.
        """
        try:
            prepared = await self._prepare(self._media_dir / item.file_path, item)
        except Exception as error:
            logger.warning(
                "media_host.release_unlocated", file_path=item.file_path, error=str(error)[:200]
            )
            return
        await self.release(self._backend.placed(prepared), item)

    async def release(self, hosted: HostedMedia, item: MediaToHost | None = None) -> None:
        """`item` is settled: remove its copy unless another unsettled item shares it.

        Best effort: a copy left behind is logged and left to the store's lifecycle rule.
        Without an `item`, the copy goes whoever shares it.
        """
        if not hosted.key:
            return
        if item is not None:
            holders = self._holders.get(hosted.key, set())
            holders.discard(_holder(item))
            if holders:
                # Another item's container may be downloading it: the last one removes it.
                logger.info("media_host.kept_for_another_item", key=hosted.key)
                return
        self._holders.pop(hosted.key, None)
        try:
            await self._backend.remove(hosted)
        except Exception as error:
            logger.warning("media_host.remove_failed", key=hosted.key, error=str(error)[:200])
