"""Preparing media for Instagram: ms per photo, seconds per 10 s of video, and the loop meanwhile."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from benchmarks.common import LoopMonitor, mean, ms, timer
from bot.services.media_prep import MediaPreparer, prepare
from db.vocabulary import Framing, MediaKind
from tests.helpers.media_samples import write_large_jpeg, write_photo, write_video

PHOTO_RUNS = 3
VIDEO_SECONDS = 10


def _photo(source: Path, framing: Framing, root: Path) -> tuple[float, float]:
    """Cold (an empty cache each run) and warm (a cache hit) ms for one photo and framing."""
    cold = []
    for run in range(PHOTO_RUNS):
        started = timer()
        prepare(source, MediaKind.PHOTO, framing, root / f"cold-{framing}-{run}")
        cold.append(timer() - started)
    started = timer()
    prepare(source, MediaKind.PHOTO, framing, root / f"cold-{framing}-0")
    return mean(cold), timer() - started


def photos(root: Path) -> None:
    jpeg = write_large_jpeg(root / "camera.jpg")
    png = write_photo(root / "screenshot.png", (1170, 2532), "PNG")
    print(f"photo preparation ({PHOTO_RUNS} runs each, cache cold; then one cache hit):")
    for label, source in (("12 MP JPEG 4000x3000", jpeg), ("PNG 1170x2532", png)):
        for framing in (Framing.BLUR, Framing.AS_IS, Framing.CROP):
            cold, warm = _photo(source, framing, root)
            print(f"  {label:<22} {framing.value:<6} {ms(cold):>12} per photo; hit {ms(warm)}")


async def video(root: Path) -> None:
    source = write_video(root / "phone.mp4", VIDEO_SECONDS, fps=30, size=(1080, 1920))
    monitor = LoopMonitor()
    monitor.start()
    started = timer()
    prepared = await MediaPreparer(root / "video").prepare(source, MediaKind.VIDEO, Framing.BLUR)
    took = timer() - started
    await monitor.stop()
    print(
        f"video transcode, {VIDEO_SECONDS} s of 1080x1920 30 fps MPEG-4 Part 2 -> H.264/AAC MP4"
        f" on {os.cpu_count()} cores: {took:.1f} s per 10 s of video"
        f" ({prepared.size / 1e6:.1f} MB); event loop meanwhile: {monitor.summary()}"
    )


async def run() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-media-") as folder:
        root = Path(folder)
        await asyncio.to_thread(photos, root)
        await video(root)
