"""Small real media files for the tests: photos by Pillow, videos by PyAV (ffmpeg in the wheel)."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
from PIL import Image


def photo_bytes(
    fmt: str = "JPEG", size: tuple[int, int] = (90, 160), *, exif_rotation: int = 0
) -> bytes:
    """A photo in `fmt` (JPEG, PNG, WEBP, GIF); `exif_rotation` sets the EXIF Orientation tag."""
    image = Image.new("RGB", size, (200, 80, 40))
    image.paste((40, 80, 200), (0, 0, size[0] // 2, size[1] // 2))
    out = io.BytesIO()
    if exif_rotation:
        exif = Image.Exif()
        exif[0x0112] = exif_rotation
        image.save(out, fmt, exif=exif)
    else:
        image.save(out, fmt)
    return out.getvalue()


def write_photo(path: Path, fmt: str = "JPEG", **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(photo_bytes(fmt, **options))  # type: ignore[arg-type]
    return path


def write_video(
    path: Path,
    seconds: float,
    *,
    codec: str = "libx264",
    faststart: bool = True,
    fps: int = 24,
    size: tuple[int, int] = (64, 112),
) -> Path:
    """An MP4 of `seconds` in `codec` (libx264, mpeg4, ...), moov at the front if `faststart`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        for index in range(int(seconds * fps)):
            pixels = np.full((size[1], size[0], 3), index % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
