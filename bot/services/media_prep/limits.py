"""Instagram's limits for Story media, in one place.

From Meta's documentation, Instagram Platform → Content Publishing and the
IG User Media reference ("Story" image and video specifications):
https://developers.facebook.com/docs/instagram-platform/reference/ig-user/media
"""

from __future__ import annotations

MB = 1024 * 1024

# Images: JPEG only, at most 8 MB; 9:16 is recommended (1080x1920 fills the screen).
IMAGE_CONTENT_TYPE = "image/jpeg"
IMAGE_MAX_BYTES = 8 * MB
STORY_WIDTH = 1080
STORY_HEIGHT = 1920

# Videos: MOV or MP4 with the moov atom at the front, H.264 or HEVC, AAC audio.
VIDEO_CONTENT_TYPE = "video/mp4"
VIDEO_CODECS = frozenset({"h264", "hevc"})
AUDIO_CODECS = frozenset({"aac"})
VIDEO_MIN_FPS = 23.0
VIDEO_MAX_FPS = 60.0
VIDEO_MAX_WIDTH = 1920
VIDEO_MIN_SECONDS = 3.0
VIDEO_MAX_SECONDS = 60.0
VIDEO_MAX_BYTES = 100 * MB
VIDEO_MAX_BITS_PER_SECOND = 25_000_000
