"""Preparing media for Instagram: photos to Story JPEGs, videos probed and transcoded, cached."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from bot.services.media_prep import (
    ManualOnlyError,
    MediaPreparer,
    assess,
    prepare,
    prepared_dir,
)
from bot.services.media_prep import cache as prep_cache
from bot.services.media_prep.limits import IMAGE_MAX_BYTES, VIDEO_MAX_SECONDS
from bot.services.media_prep.photos import encode_jpeg
from bot.services.media_prep.videos import moov_before_mdat, probe
from db.vocabulary import Framing, MediaKind
from tests.helpers.bot_process import index
from tests.helpers.media_samples import (
    write_exif_rotated_jpeg,
    write_gif,
    write_large_jpeg,
    write_photo,
    write_rgba_png,
    write_video,
)
from tests.helpers.support import command_env, execute, fetch_all

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def close(pixel: object, colour: tuple[int, int, int], slack: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= slack for a, b in zip(pixel[:3], colour, strict=True))


def opened(path: Path) -> Image.Image:
    with Image.open(path) as image:
        assert image.format == "JPEG"
        image.load()
        return image.convert("RGB")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return prepared_dir(tmp_path / "media")


def test_png_with_transparency_becomes_a_jpeg_flattened_on_white(
    tmp_path: Path, cache_dir: Path
) -> None:
    source = write_rgba_png(tmp_path / "clear.png")
    prepared = prepare(source, MediaKind.PHOTO, Framing.AS_IS, cache_dir)
    image = opened(prepared.path)
    assert prepared.content_type == "image/jpeg"
    assert prepared.size == prepared.path.stat().st_size
    assert prepared.sha256 == prep_cache.file_sha256(prepared.path)
    assert close(image.getpixel((2, 2)), (255, 255, 255))
    assert close(image.getpixel((image.width // 2, image.height // 2)), RED)


def test_webp_becomes_a_jpeg(tmp_path: Path, cache_dir: Path) -> None:
    source = write_photo(tmp_path / "photo.webp", (180, 320), "WEBP", quality=90)
    image = opened(prepare(source, MediaKind.PHOTO, Framing.AS_IS, cache_dir).path)
    assert image.size == (180, 320)
    assert close(image.getpixel((10, 160)), RED)
    assert close(image.getpixel((170, 160)), BLUE)


def test_exif_rotated_jpeg_comes_out_upright(tmp_path: Path, cache_dir: Path) -> None:
    # Stored 400x200 red|blue; turned 90° clockwise it is 200x400 with red on top.
    source = write_exif_rotated_jpeg(tmp_path / "phone.jpg")
    image = opened(prepare(source, MediaKind.PHOTO, Framing.AS_IS, cache_dir).path)
    assert image.size == (200, 400)
    assert close(image.getpixel((100, 20)), RED)
    assert close(image.getpixel((100, 380)), BLUE)
    with Image.open(prepare(source, MediaKind.PHOTO, Framing.AS_IS, cache_dir).path) as again:
        assert again.getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize(
    ("framing", "size"),
    [
        (Framing.AS_IS, (400, 300)),
        (Framing.BLUR, (1080, 1920)),
        (Framing.SOLID, (1080, 1920)),
        (Framing.CROP, (1080, 1920)),
    ],
)
def test_a_4_3_photo_under_each_framing(
    tmp_path: Path, cache_dir: Path, framing: Framing, size: tuple[int, int]
) -> None:
    source = write_photo(tmp_path / "wide.jpg", (400, 300), "JPEG", quality=95)
    image = opened(prepare(source, MediaKind.PHOTO, framing, cache_dir).path)
    assert image.size == size
    if framing is Framing.CROP:
        # The centre 9:16 strip of a red|blue photo: both colours, nothing else.
        assert close(image.getpixel((10, 960)), RED)
        assert close(image.getpixel((1070, 960)), BLUE)
    elif framing is Framing.SOLID:
        # Above the fitted photo: its average colour, half red and half blue.
        assert close(image.getpixel((540, 20)), (128, 0, 128), slack=12)
        assert close(image.getpixel((10, 960)), RED)
    elif framing is Framing.BLUR:
        top = image.getpixel((540, 20))
        assert not close(top, (255, 255, 255)) and not close(top, (0, 0, 0))
        assert close(image.getpixel((10, 960)), RED)


def test_gif_becomes_its_first_frame_as_a_photo(tmp_path: Path, cache_dir: Path) -> None:
    source = write_gif(tmp_path / "loop.gif")
    # The library files a GIF under video; preparation still makes it a photo Story.
    prepared = prepare(source, MediaKind.VIDEO, Framing.AS_IS, cache_dir)
    assert prepared.content_type == "image/jpeg" and not prepared.is_video
    assert opened(prepared.path).size == (200, 200)
    assert assess(source, MediaKind.VIDEO).describe() == (
        "Auto Post after preparation (first frame of the GIF)"
    )


def test_a_jpeg_too_big_is_made_smaller_until_it_fits(tmp_path: Path) -> None:
    large = Image.open(write_large_jpeg(tmp_path / "large.jpg"))
    limit = 200_000
    assert len(encode_jpeg(large, limit=IMAGE_MAX_BYTES)) > limit
    assert len(encode_jpeg(large, limit=limit)) <= limit


def test_mpeg4_video_is_transcoded_to_h264_mp4_with_moov_first(
    tmp_path: Path, cache_dir: Path
) -> None:
    source = write_video(tmp_path / "clip.mp4", 20)
    before = probe(source)
    assert before.codec == "mpeg4" and not before.moov_first
    verdict = assess(source, MediaKind.VIDEO)
    assert verdict.ok and "codec mpeg4" in verdict.describe()

    prepared = prepare(source, MediaKind.VIDEO, Framing.BLUR, cache_dir)
    after = probe(prepared.path)
    assert prepared.content_type == "video/mp4"
    assert moov_before_mdat(prepared.path)
    assert (after.codec, after.audio_codec) == ("h264", "aac")
    assert 23 <= after.fps <= 60
    assert after.seconds == pytest.approx(20, abs=0.5)  # never cut
    assert (after.width, after.height) == (320, 568)


def test_an_acceptable_video_is_copied_as_is(tmp_path: Path, cache_dir: Path) -> None:
    source = write_video(tmp_path / "fine.mp4", 4, fps=24, codec="libx264", faststart=True)
    assert assess(source, MediaKind.VIDEO).describe() == "Auto Post as is"
    prepared = prepare(source, MediaKind.VIDEO, Framing.AS_IS, cache_dir)
    assert prepared.path.read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    ("seconds", "reason"),
    [
        (75, "video 75 s: over the 60 s Story limit"),
        (2, "video 2 s: under the 3 s Story minimum"),
    ],
)
def test_a_video_outside_the_length_limits_is_manual_only(
    tmp_path: Path, cache_dir: Path, seconds: int, reason: str
) -> None:
    source = write_video(tmp_path / "long.mp4", seconds, fps=2, size=(64, 112), audio=False)
    verdict = assess(source, MediaKind.VIDEO)
    assert not verdict.ok and verdict.reason == reason
    with pytest.raises(ManualOnlyError, match=reason):
        prepare(source, MediaKind.VIDEO, Framing.AS_IS, cache_dir)
    # Nothing is left that looks prepared.
    assert not list(cache_dir.rglob("*.mp4"))
    assert seconds != VIDEO_MAX_SECONDS


def test_an_unreadable_file_gets_a_reason_not_a_crash(tmp_path: Path, cache_dir: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    assert assess(broken, MediaKind.VIDEO).reason is not None
    photo = tmp_path / "broken.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    assert (assess(photo, MediaKind.PHOTO).reason or "").startswith("photo unreadable")
    with pytest.raises(ValueError, match="photo unreadable"):
        prepare(photo, MediaKind.PHOTO, Framing.AS_IS, cache_dir)


def test_a_second_prepare_is_a_cache_hit_and_framing_is_part_of_the_key(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_photo(tmp_path / "wide.png", (400, 300), "PNG")
    first = prepare(source, MediaKind.PHOTO, Framing.BLUR, cache_dir)

    def no_work(*_: object) -> bytes:
        raise AssertionError("prepared again")

    monkeypatch.setattr("bot.services.media_prep.photos.prepare_photo", no_work)
    # Renamed (same content): still a hit; the key is the content, not the path.
    renamed = source.rename(tmp_path / "renamed.png")
    assert prepare(renamed, MediaKind.PHOTO, Framing.BLUR, cache_dir) == first
    with pytest.raises(AssertionError, match="prepared again"):
        prepare(renamed, MediaKind.PHOTO, Framing.CROP, cache_dir)


def test_a_crash_mid_write_leaves_nothing_that_looks_prepared(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_photo(tmp_path / "photo.png", (90, 160), "PNG")

    def crash(partial: Path, suffix: str) -> tuple[Path, str, int]:
        raise OSError("disk gone")

    monkeypatch.setattr(prep_cache, "publish", crash)
    with pytest.raises(OSError, match="disk gone"):
        prepare(source, MediaKind.PHOTO, Framing.AS_IS, cache_dir)
    assert [p.name for p in cache_dir.rglob("*") if p.is_file()] == [".lock"]
    monkeypatch.undo()
    prepared = prepare(source, MediaKind.PHOTO, Framing.AS_IS, cache_dir)
    assert opened(prepared.path).size == (90, 160)


def test_a_partial_file_from_a_killed_process_is_not_taken_for_done(
    tmp_path: Path, cache_dir: Path
) -> None:
    source = write_photo(tmp_path / "photo.png", (90, 160), "PNG")
    first = prepare(source, MediaKind.PHOTO, Framing.AS_IS, cache_dir)
    first.path.unlink()
    dead = first.path.parent / ".partial-dead.jpg"
    dead.write_bytes(b"\xff\xd8half")
    again = prepare(source, MediaKind.PHOTO, Framing.AS_IS, cache_dir)
    assert again.sha256 == first.sha256 and again.path.exists()
    # Under the entry's lock no live writer can own it: the dead writer's file is gone.
    assert not dead.exists()


async def test_the_event_loop_keeps_answering_while_a_video_transcodes(
    tmp_path: Path, cache_dir: Path
) -> None:
    source = write_video(tmp_path / "clip.mp4", 20, size=(640, 1136))
    preparer = MediaPreparer(cache_dir)
    gaps: list[float] = []

    async def ticker(done: asyncio.Event) -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    done = asyncio.Event()
    ticking = asyncio.create_task(ticker(done))
    started = time.perf_counter()
    prepared = await preparer.prepare(source, MediaKind.VIDEO, Framing.BLUR)
    took = time.perf_counter() - started
    done.set()
    await ticking
    assert prepared.is_video
    assert took > 0.3, "the transcode was too quick to prove anything"
    # Ticks went on throughout: the loop was never held for long.
    assert len(gaps) > took / 0.05
    assert max(gaps) < 0.25


async def test_index_says_per_file_what_instagram_would_take_and_stores_why_not(
    tmp_path: Path, database_url: str, session_factory: Any
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    write_photo(media / "wide.png", (400, 300), "PNG")
    write_video(media / "clips" / "long.mp4", 75, fps=2, size=(64, 112), audio=False)
    write_video(media / "clips" / "old_codec.mp4", 20, fps=2, size=(64, 112), audio=False)
    # Prepared files live under MEDIA_DIR; index must never take them for the library.
    write_photo(prepared_dir(media) / "ab" / "cd.jpg", (90, 160), "JPEG")
    env = command_env(database_url, tmp_path, media)
    out = await index(env, str(media))
    lines = out.strip().splitlines()
    assert sorted(lines[:-1]) == [
        "clips/long.mp4: manual only: video 75 s: over the 60 s Story limit",
        "clips/old_codec.mp4: Auto Post after preparation "
        "(transcode: codec mpeg4, 2 fps, moov atom not first)",
        "wide.png: Auto Post after preparation (PNG to JPEG)",
    ]
    assert lines[-1].startswith("indexed 3 / updated 0 / deactivated 0 / skipped 0")
    assert lines[-1].endswith("of 3 read, 1 manual only (no Auto Post)")
    refusals = await fetch_all(
        session_factory, "SELECT file_path, autopost_refusal FROM media_items ORDER BY file_path"
    )
    assert [tuple(row) for row in refusals] == [
        ("clips/long.mp4", "video 75 s: over the 60 s Story limit"),
        ("clips/old_codec.mp4", None),
        ("wide.png", None),
    ]

    # The long video is cut to 30 s by its owner: re-index re-assesses it.
    write_video(media / "clips" / "long.mp4", 30, fps=2, size=(64, 112), audio=False)
    out = await index(env, str(media))
    assert "clips/long.mp4: Auto Post after preparation" in out
    [row] = await fetch_all(
        session_factory,
        "SELECT autopost_refusal FROM media_items WHERE file_path = 'clips/long.mp4'",
    )
    assert row.autopost_refusal is None


async def test_files_indexed_before_index_judged_them_are_judged_once_and_nothing_else_changes(
    tmp_path: Path, database_url: str, session_factory: Any
) -> None:
    """Rows from before the verdict existed (no verdict, never judged): the next index
    judges the unchanged files once, leaving their set-aside state alone."""
    media = tmp_path / "media"
    write_photo(media / "wide.png", (400, 300), "PNG")
    write_video(media / "clips" / "long.mp4", 75, fps=2, size=(64, 112), audio=False)
    env = command_env(database_url, tmp_path, media)
    await index(env, str(media))
    await execute(
        session_factory,
        "UPDATE media_items SET autopost_refusal = NULL, autopost_assessed_at = NULL,"
        " set_aside_at = CASE WHEN file_path = 'wide.png' THEN now() END,"
        " set_aside_reason = CASE WHEN file_path = 'wide.png' THEN 'refused' END",
    )

    out = await index(env, str(media))
    assert "clips/long.mp4: manual only: video 75 s: over the 60 s Story limit" in out
    assert "updated 0" in out and "unchanged 2" in out
    rows = await fetch_all(
        session_factory,
        "SELECT file_path, autopost_refusal, set_aside_reason, autopost_assessed_at IS NOT NULL"
        " AS judged FROM media_items ORDER BY file_path",
    )
    assert [tuple(row) for row in rows] == [
        ("clips/long.mp4", "video 75 s: over the 60 s Story limit", None, True),
        ("wide.png", None, "refused", True),
    ]
    assert "long.mp4" not in await index(env, str(media))  # judged once


def test_a_phone_video_turned_by_its_display_matrix_comes_out_upright(
    tmp_path: Path, cache_dir: Path
) -> None:
    # Stored landscape red|blue, to be shown turned 90° clockwise: upright, red on top.
    source = write_video(
        tmp_path / "phone.mp4", 4, fps=24, size=(160, 90), audio=False, display_rotation=-90
    )
    found = probe(source)
    assert (found.width, found.height, found.turn) == (90, 160, 90)
    prepared = prepare(source, MediaKind.VIDEO, Framing.AS_IS, cache_dir)
    with av.open(str(prepared.path)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height, frame.rotation) == (90, 160, 0)
        upright = frame.to_image()
    assert close(upright.getpixel((45, 20)), RED, slack=60)
    assert close(upright.getpixel((45, 140)), BLUE, slack=60)


@pytest.mark.parametrize(
    ("framing", "size"), [(Framing.AS_IS, (1080, 810)), (Framing.CROP, (1080, 1920))]
)
def test_a_12_mp_jpeg_decoded_at_a_smaller_scale_still_fills_the_story(
    tmp_path: Path, cache_dir: Path, framing: Framing, size: tuple[int, int]
) -> None:
    source = write_large_jpeg(tmp_path / "camera.jpg")
    image = opened(prepare(source, MediaKind.PHOTO, framing, cache_dir).path)
    assert image.size == size


def test_a_video_wrong_only_in_its_moov_position_is_remuxed_not_transcoded(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_video(tmp_path / "camera.mp4", 4, fps=24, codec="libx264")
    assert assess(source, MediaKind.VIDEO).describe() == (
        "Auto Post after preparation (moov atom moved to the front)"
    )

    def no_transcode(*_: object) -> None:
        raise AssertionError("transcoded")

    monkeypatch.setattr("bot.services.media_prep.videos.transcode", no_transcode)
    prepared = prepare(source, MediaKind.VIDEO, Framing.AS_IS, cache_dir)
    before, after = probe(source), probe(prepared.path)
    assert after.moov_first and not before.moov_first
    assert (after.codec, after.audio_codec, after.width, after.fps) == ("h264", "aac", 320, 24)
    assert after.seconds == pytest.approx(before.seconds, abs=0.1)


async def test_a_transcode_cancelled_at_shutdown_stops_at_its_next_frame(
    tmp_path: Path, cache_dir: Path
) -> None:
    # The worker thread cannot be cancelled; left running, it would hold the process's
    # exit (asyncio.run waits for the default executor) until the transcode ended.
    source = write_video(tmp_path / "long.mp4", 30, fps=24, size=(480, 854))
    preparer = MediaPreparer(cache_dir)
    preparing = asyncio.create_task(preparer.prepare(source, MediaKind.VIDEO, Framing.BLUR))

    def partials() -> list[Path]:
        return list(cache_dir.glob("*/.partial-*"))

    for _ in range(200):
        await asyncio.sleep(0.02)
        if partials():
            break
    assert partials(), "the transcode never started"
    preparing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await preparing
    stopped_by = time.perf_counter() + 1.5
    while partials() and time.perf_counter() < stopped_by:
        await asyncio.sleep(0.02)
    assert not partials(), "the transcode went on after its caller was cancelled"
    assert not list(cache_dir.glob("*/*.mp4")), "a cancelled preparation finished"
