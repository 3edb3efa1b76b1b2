"""Media files made on the spot for tests and benchmarks (Pillow and PyAV; no fixtures on disk)."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112
ROTATED_90_CW = 6  # "rotate 90° clockwise to display"


def two_colour_photo(size: tuple[int, int], left=(255, 0, 0), right=(0, 0, 255)) -> Image.Image:
    """Left half one colour, right half another: where each half lands shows the rotation."""
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def write_photo(path: Path, size=(400, 300), image_format: str | None = None, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    two_colour_photo(size).save(path, image_format, **save)
    return path


def write_rgba_png(path: Path, size=(300, 400)) -> Path:
    """Transparent except a red square in the middle."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
    image.save(path, "PNG")
    return path


def write_exif_rotated_jpeg(path: Path, stored=(400, 200)) -> Path:
    """Stored landscape red|blue; EXIF says turn it 90° clockwise: upright, red is on top."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CW
    two_colour_photo(stored).save(path, "JPEG", exif=exif.tobytes(), quality=95)
    return path


def write_gif(path: Path, size=(200, 200), frames: int = 4) -> Path:
    images = [Image.new("P", size, colour * 40) for colour in range(frames)]
    images[0].save(path, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def write_large_jpeg(path: Path, size=(4000, 3000)) -> Path:
    """A 12 MP photo with detail, so the encoder has work like a camera's."""
    noise = np.random.default_rng(7).integers(0, 255, (size[1] // 8, size[0] // 8, 3), np.uint8)
    Image.fromarray(noise).resize(size, Image.Resampling.BICUBIC).save(path, "JPEG", quality=92)
    return path


def write_video(
    path: Path,
    seconds: float,
    *,
    fps: int = 10,
    codec: str = "mpeg4",
    size=(320, 568),
    audio: bool = True,
    faststart: bool = False,
    display_rotation: int = 0,
) -> Path:
    """A moving test video; mpeg4 (MPEG-4 Part 2) with MP2 audio unless told otherwise.

    With `display_rotation`, the frames are red|blue and the stream carries that display
    matrix rotation (ffmpeg's sense: -90 asks players to turn it 90° clockwise).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as output:
        video = output.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if display_rotation:
            video.set_display_rotation(display_rotation)
        sound = None
        if audio:
            sound = output.add_stream("aac" if codec in {"libx264", "h264"} else "mp2", rate=44100)
            sound.layout = "mono"
        for index in range(int(seconds * fps)):
            if display_rotation:
                pixels = np.zeros((height, width, 3), dtype=np.uint8)
                pixels[:, : width // 2] = (255, 0, 0)
                pixels[:, width // 2 :] = (0, 0, 255)
            else:
                pixels = np.full((height, width, 3), (index * 7) % 255, dtype=np.uint8)
                pixels[:, (index * 4) % width] = 255
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
        if sound is not None:
            samples = sound.codec_context.frame_size or 1152
            for start in range(0, int(seconds * 44100), samples):
                chunk = av.AudioFrame.from_ndarray(
                    np.zeros((1, samples), dtype=np.int16), format="s16", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 44100, start
                output.mux(sound.encode(chunk))
            output.mux(sound.encode(None))
    return path


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()
