"""Media that Instagram accepts: photos to JPEG Stories, videos probed and transcoded, cached.

`assess` says at index time whether a file can be Auto Posted after preparation;
`prepare` makes the file Instagram fetches, once per (content, framing, version),
under `MEDIA_DIR/.storyqueue/prepared/` (docs/architecture.md, media preparation).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import structlog
from PIL import Image, UnidentifiedImageError

from bot.services.media_prep import cache, photos, videos
from bot.services.media_prep.limits import (
    IMAGE_CONTENT_TYPE,
    IMAGE_MAX_BYTES,
    VIDEO_CONTENT_TYPE,
)
from db.vocabulary import Framing, MediaKind

logger = structlog.get_logger(__name__)

UNDECODABLE = "photo unreadable: not an image format Pillow can decode"

# Raise when a change to the preparation would change its output: old entries are then unused.
PREP_VERSION = 1
# Under MEDIA_DIR; `index` never walks it (it starts with a dot).
PREPARED_FOLDER = Path(".storyqueue", "prepared")
JPEG_SUFFIX = ".jpg"
MP4_SUFFIX = ".mp4"
# Videos ignore the photo framing: one transcode serves every setting.
VIDEO_SETTING = "video"


def prepared_dir(media_dir: Path) -> Path:
    """The one folder prepared files live in, MEDIA_DIR/.storyqueue/prepared/."""
    return media_dir / PREPARED_FOLDER


@dataclass(frozen=True, slots=True)
class PreparedMedia:
    path: Path
    content_type: str
    sha256: str  # of the prepared bytes: a content-derived name for hosting
    size: int

    @property
    def is_video(self) -> bool:
        return self.content_type == VIDEO_CONTENT_TYPE


@dataclass(frozen=True, slots=True)
class AutoPostVerdict:
    """Whether Instagram takes the file after preparation; `reason` says why not."""

    reason: str | None = None
    changes: tuple[str, ...] = ()  # what preparation changes for Instagram to take it

    @property
    def ok(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        if self.reason is not None:
            return f"manual only: {self.reason}"
        if self.changes:
            return "Auto Post after preparation (" + ", ".join(self.changes) + ")"
        return "Auto Post as is"


@dataclass(frozen=True, slots=True)
class ManualOnly:
    """A press of 🤖 on an item Instagram would refuse: nothing was held; `reason` says why."""

    reason: str


class ManualOnlyError(ValueError):
    """The file cannot become an Instagram Story; the message says why."""


def _is_gif(source: Path) -> bool:
    with open(source, "rb") as handle:
        return handle.read(6) in (b"GIF87a", b"GIF89a")


def treated_as_photo(source: Path, kind: MediaKind) -> bool:
    """Photos, and GIFs: a GIF's first frame becomes a photo Story (never cut to a video)."""
    return kind is MediaKind.PHOTO or _is_gif(source)


def assess(source: Path, kind: MediaKind) -> AutoPostVerdict:
    """Whether Instagram would take this file after `prepare` (blocking; run in a thread)."""
    try:
        if treated_as_photo(source, kind):
            return _assess_photo(source)
        found = videos.probe(source)
    except (OSError, ValueError) as error:
        return AutoPostVerdict(reason=str(error))
    refusal = videos.refusal(found)
    if refusal is not None:
        return AutoPostVerdict(reason=refusal)
    needed = videos.fixes(found)
    if needed == [videos.MOOV_NOT_FIRST]:
        return AutoPostVerdict(changes=("moov atom moved to the front",))
    return AutoPostVerdict(changes=("transcode: " + ", ".join(needed),) if needed else ())


def _assess_photo(source: Path) -> AutoPostVerdict:
    try:
        with Image.open(source) as image:
            image_format = image.format or "unknown"
            # The header only: decoding every photo would make a large index slow.
            orientation = image.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, SyntaxError):
        return AutoPostVerdict(reason=UNDECODABLE)
    except OSError as error:
        return AutoPostVerdict(reason=f"photo unreadable: {error.strerror or error}")
    changes = []
    if image_format == "GIF":
        changes.append("first frame of the GIF")
    elif image_format != "JPEG":
        changes.append(f"{image_format} to JPEG")
    if orientation != 1:
        changes.append("EXIF rotation applied")
    if source.stat().st_size > IMAGE_MAX_BYTES:
        changes.append("under 8 MB")
    return AutoPostVerdict(changes=tuple(changes))


def prepare(
    source: Path,
    kind: MediaKind,
    framing: Framing,
    cache_dir: Path,
    *,
    source_hash: str | None = None,
    stop: threading.Event | None = None,
) -> PreparedMedia:
    """The file Instagram should fetch for `source` (blocking; see MediaPreparer.prepare).

    Cached by (the source's content hash, framing, PREP_VERSION): a second call
    returns the finished file without work. Raises ManualOnlyError for a file no
    preparation makes acceptable, ValueError for an unreadable one.
    """
    photo = treated_as_photo(source, kind)
    setting = framing.value if photo else VIDEO_SETTING
    digest = source_hash or cache.file_sha256(source)
    entry = cache_dir / cache.entry_key(digest, setting, PREP_VERSION)
    suffix = JPEG_SUFFIX if photo else MP4_SUFFIX
    content_type = IMAGE_CONTENT_TYPE if photo else VIDEO_CONTENT_TYPE
    done = cache.cached(entry, suffix)
    if done is None:
        with cache.entry_lock(entry):
            # Another thread or process may have finished it while we waited.
            done = cache.cached(entry, suffix)
            if done is None:
                cache.clear_partials(entry)
                done = _make(source, photo, framing, entry, suffix, stop)
    else:
        logger.debug("media_prep.cache_hit", source=str(source), setting=setting)
    return PreparedMedia(
        path=done, content_type=content_type, sha256=done.stem, size=done.stat().st_size
    )


def _make(
    source: Path,
    photo: bool,
    framing: Framing,
    entry: Path,
    suffix: str,
    stop: threading.Event | None = None,
) -> Path:
    partial = cache.partial_path(entry, suffix)
    try:
        if photo:
            try:
                partial.write_bytes(photos.prepare_photo(str(source), framing))
            except (UnidentifiedImageError, SyntaxError):
                raise ValueError(UNDECODABLE) from None
            except OSError as error:
                if error.errno is not None:
                    raise  # the disk, not the picture
                # Pillow's decoder errors (a truncated file) carry no errno.
                raise ValueError(f"photo unreadable: {error}") from None
        else:
            found = videos.probe(source)
            refusal = videos.refusal(found)
            if refusal is not None:
                raise ManualOnlyError(refusal)
            needed = videos.fixes(found)
            if needed == [videos.MOOV_NOT_FIRST]:
                # Only the layout is wrong: moving the moov atom keeps every pixel.
                videos.remux_faststart(source, partial, stop)
            elif needed:
                videos.transcode(source, partial, found, stop)
            else:
                # Already acceptable: a copy, so a later edit of the source cannot change it.
                shutil.copyfile(source, partial)
        path, _, _ = cache.publish(partial, suffix)
    except videos.PreparationStopped:
        # Nobody awaits this thread's result any more: this line is all that says so.
        logger.warning("media_prep.stopped", source=str(source))
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    logger.info("media_prep.prepared", source=str(source), prepared=path.name)
    return path


class MediaPreparer:
    """Runs `prepare` in a worker thread, one preparation at a time.

    A thread, not a process: Pillow and ffmpeg (inside PyAV) release the GIL
    while they decode and encode, so the event loop keeps answering presses
    during a transcode, without pickling or a second interpreter. One at a time:
    libx264 already uses both cores.
    """

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._one_at_a_time = asyncio.Semaphore(1)

    async def prepare(
        self,
        source: Path,
        kind: MediaKind,
        framing: Framing,
        *,
        source_hash: str | None = None,
    ) -> PreparedMedia:
        stop = threading.Event()
        async with self._one_at_a_time:
            try:
                return await asyncio.to_thread(
                    prepare,
                    source,
                    kind,
                    framing,
                    self.cache_dir,
                    source_hash=source_hash,
                    stop=stop,
                )
            except asyncio.CancelledError:
                # A thread cannot be cancelled: unstopped, a transcode would run on after
                # shutdown and hold the process's exit (asyncio.run waits for it).
                stop.set()
                raise

    async def assess(self, source: Path, kind: MediaKind) -> AutoPostVerdict:
        return await asyncio.to_thread(assess, source, kind)
