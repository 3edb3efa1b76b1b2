"""Photos to a Story JPEG: EXIF orientation, sRGB, the chat's framing, under 8 MB."""

from __future__ import annotations

import io
import math

import structlog
from PIL import Image, ImageCms, ImageFilter, ImageOps

from bot.services.media_prep.limits import IMAGE_MAX_BYTES, STORY_HEIGHT, STORY_WIDTH
from db.vocabulary import Framing

logger = structlog.get_logger(__name__)

STORY_SIZE = (STORY_WIDTH, STORY_HEIGHT)
QUALITIES = (90, 82, 74, 66)
# Blurring a 1080x1920 canvas is slow; blurring a small copy and enlarging it looks the same.
BLUR_SCALE = 8
BLUR_RADIUS = 6
WHITE = (255, 255, 255)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


# EXIF orientations that turn the picture a quarter (its width becomes its height).
QUARTER_TURNS = frozenset({5, 6, 7, 8})


def _decode_at_most(opened: Image.Image, framing: Framing) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale when the Story needs no more pixels.

    The DCT scaling makes a 12 MP photo several times cheaper; the size asked for
    is what the framing fills (crop covers 1080x1920, the others fit inside it).
    """
    if opened.format != "JPEG":
        return
    width, height = opened.size
    if opened.getexif().get(0x0112, 1) in QUARTER_TURNS:
        width, height = height, width
    ratios = (STORY_WIDTH / width, STORY_HEIGHT / height)
    scale = max(ratios) if framing is Framing.CROP else min(ratios)
    if scale < 1:
        opened.draft("RGB", (math.ceil(opened.width * scale), math.ceil(opened.height * scale)))


def load_photo(data: io.BytesIO | str | bytes, framing: Framing = Framing.AS_IS) -> Image.Image:
    """The first frame, upright by its EXIF orientation, as sRGB RGB pixels."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(source) as opened:
        opened.seek(0)  # a GIF or an animated WebP: its first frame
        _decode_at_most(opened, framing)
        icc = opened.info.get("icc_profile")
        upright = ImageOps.exif_transpose(opened)
        upright.load()
    return _flatten(_to_srgb(upright, icc))


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    if not icc or image.mode not in {"RGB", "RGBA", "CMYK", "L"}:
        return image
    try:
        embedded = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, embedded, _SRGB, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError) as error:
        # A broken profile: the pixels as they are beat refusing the photo.
        logger.warning("media_prep.icc_ignored", reason=str(error))
        return image
    assert converted is not None
    return converted


def _flatten(image: Image.Image) -> Image.Image:
    """Transparency on white (JPEG has none); every other mode to RGB."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA"}:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB") if image.mode != "RGB" else image


def _fit(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    """Scaled down (never up) to fit inside box, keeping its proportions."""
    fitted = image.copy()
    fitted.thumbnail(box, Image.Resampling.LANCZOS)
    return fitted


def _centred_on(background: Image.Image, photo: Image.Image) -> Image.Image:
    fitted = ImageOps.contain(photo, STORY_SIZE, Image.Resampling.LANCZOS)
    left = (STORY_WIDTH - fitted.width) // 2
    top = (STORY_HEIGHT - fitted.height) // 2
    background.paste(fitted, (left, top))
    return background


def frame(photo: Image.Image, framing: Framing) -> Image.Image:
    """The photo laid out on a Story as the chat's framing setting says."""
    if framing is Framing.CROP:
        return ImageOps.fit(photo, STORY_SIZE, Image.Resampling.LANCZOS)
    if framing is Framing.BLUR:
        small = (STORY_WIDTH // BLUR_SCALE, STORY_HEIGHT // BLUR_SCALE)
        fill = ImageOps.fit(photo, small, Image.Resampling.BILINEAR)
        fill = fill.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
        return _centred_on(fill.resize(STORY_SIZE, Image.Resampling.BILINEAR), photo)
    if framing is Framing.SOLID:
        # The photo's own average colour: a frame that belongs to the picture.
        average = photo.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        assert isinstance(average, tuple)
        return _centred_on(Image.new("RGB", STORY_SIZE, average[:3]), photo)
    return _fit(photo, STORY_SIZE)


def encode_jpeg(image: Image.Image, limit: int = IMAGE_MAX_BYTES) -> bytes:
    """A baseline sRGB JPEG of at most `limit` bytes: lower quality first, then smaller."""
    while True:
        for quality in QUALITIES:
            buffer = io.BytesIO()
            image.save(
                buffer,
                "JPEG",
                quality=quality,
                optimize=True,
                icc_profile=_SRGB.tobytes(),
            )
            if buffer.tell() <= limit:
                return buffer.getvalue()
        if min(image.size) <= 16:
            raise ValueError(f"could not make a JPEG under {limit} bytes")
        image = image.resize(
            (max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)),
            Image.Resampling.LANCZOS,
        )


def prepare_photo(data: io.BytesIO | str | bytes, framing: Framing) -> bytes:
    """The Story JPEG's bytes for a photo file (PNG, WebP, JPEG, GIF's first frame...)."""
    return encode_jpeg(frame(load_photo(data, framing), framing))
