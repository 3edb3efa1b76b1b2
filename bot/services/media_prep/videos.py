"""Videos: probe with PyAV, decide (as is / transcode / manual only), transcode to H.264/AAC MP4."""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

import av
import av.filter

from bot.services.media_prep.limits import (
    AUDIO_CODECS,
    VIDEO_CODECS,
    VIDEO_MAX_BITS_PER_SECOND,
    VIDEO_MAX_BYTES,
    VIDEO_MAX_FPS,
    VIDEO_MAX_SECONDS,
    VIDEO_MAX_WIDTH,
    VIDEO_MIN_FPS,
    VIDEO_MIN_SECONDS,
)

# What a transcode aims at: well inside every limit (60 s at 8 Mbps is 60 MB of the 100).
TARGET_FPS = 30
TARGET_VIDEO_BITRATE = "8M"
TARGET_AUDIO_BITRATE = 128_000
TARGET_AUDIO_RATE = 48_000
MP4_BRANDS = ("mov", "mp4")
MOOV_NOT_FIRST = "moov atom not first"


class PreparationStopped(Exception):
    """The caller went away (shutdown): the worker thread stops instead of finishing alone."""


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise PreparationStopped


@dataclass(frozen=True, slots=True)
class VideoProbe:
    container: str
    codec: str
    fps: float
    width: int
    height: int
    seconds: float
    bits_per_second: int
    audio_codec: str | None  # None: no audio track
    moov_first: bool
    size: int
    # Degrees clockwise a player turns the picture (a phone's display matrix); width and
    # height above are as shown, after that turn.
    turn: int = 0


def moov_before_mdat(path: Path) -> bool:
    """True when the top-level moov box comes before mdat (a "faststart" file)."""
    with open(path, "rb") as handle:
        while header := handle.read(8):
            if len(header) < 8:
                return False
            size, kind = struct.unpack(">I4s", header)
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if size == 1:  # a 64-bit size follows the type
                size = struct.unpack(">Q", handle.read(8))[0] - 8
            elif size == 0:  # the box runs to the end of the file
                return False
            handle.seek(size - 8, 1)
    return False


def probe(path: Path) -> VideoProbe:
    """What Instagram checks about a video file. Raises ValueError when it cannot be read."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("no video track")
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            rate = video.average_rate or video.guessed_rate or Fraction(0)
            if container.duration is not None:
                seconds = container.duration / av.time_base
            elif video.duration is not None and video.time_base is not None:
                seconds = float(video.duration * video.time_base)
            else:
                seconds = 0.0
            size = path.stat().st_size
            bits = container.bit_rate or (int(size * 8 / seconds) if seconds else 0)
            turn = _turn(container)
            width, height = video.codec_context.width, video.codec_context.height
            if turn in (90, 270):
                width, height = height, width
            return VideoProbe(
                container=container.format.name,
                codec=video.codec_context.name,
                fps=float(rate),
                width=width,
                height=height,
                seconds=seconds,
                bits_per_second=bits,
                audio_codec=audio.codec_context.name if audio is not None else None,
                moov_first=moov_before_mdat(path),
                size=size,
                turn=turn,
            )
    except av.FFmpegError as error:
        # Not str(error): it repeats the file's full path.
        raise ValueError(f"video unreadable: {error.strerror or error}") from None


def _turn(container: Any) -> int:
    """The clockwise turn the first frame's display matrix asks for: 0, 90, 180 or 270."""
    for frame in container.decode(video=0):
        # ffmpeg's rotation is counter-clockwise; players turn the other way.
        rotation: float = frame.rotation
        return round(-rotation / 90) % 4 * 90
    return 0


# The filters that turn decoded frames upright (what ffmpeg's command line does by itself).
UPRIGHT = {
    90: [("transpose", "clock")],
    180: [("hflip", ""), ("vflip", "")],
    270: [("transpose", "cclock")],
}


def refusal(found: VideoProbe) -> str | None:
    """Why no transcode can make this an Instagram Story (we never cut a video), or None."""
    seconds = round(found.seconds)
    if found.seconds < VIDEO_MIN_SECONDS:
        return f"video {seconds} s: under the {VIDEO_MIN_SECONDS:.0f} s Story minimum"
    if found.seconds > VIDEO_MAX_SECONDS:
        return f"video {seconds} s: over the {VIDEO_MAX_SECONDS:.0f} s Story limit"
    return None


def fixes(found: VideoProbe) -> list[str]:
    """What a transcode must change for Instagram to take it (empty: it takes it as is)."""
    needed = []
    if not any(brand in found.container.split(",") for brand in MP4_BRANDS):
        needed.append(f"container {found.container}")
    if found.codec not in VIDEO_CODECS:
        needed.append(f"codec {found.codec}")
    if not VIDEO_MIN_FPS <= found.fps <= VIDEO_MAX_FPS:
        needed.append(f"{found.fps:g} fps")
    if found.width > VIDEO_MAX_WIDTH:
        needed.append(f"{found.width} px wide")
    if found.bits_per_second > VIDEO_MAX_BITS_PER_SECOND:
        needed.append(f"{found.bits_per_second / 1e6:.0f} Mbps")
    if found.size > VIDEO_MAX_BYTES:
        needed.append(f"{found.size // (1024 * 1024)} MB")
    if found.audio_codec is not None and found.audio_codec not in AUDIO_CODECS:
        needed.append(f"audio {found.audio_codec}")
    if not found.moov_first:
        needed.append(MOOV_NOT_FIRST)
    return needed


def remux_faststart(source: Path, target: Path, stop: threading.Event | None = None) -> None:
    """The same video and audio packets in an MP4 with the moov atom first: no re-encoding."""
    with (
        av.open(str(source)) as inputs,
        av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as output,
    ):
        kept = [stream for stream in inputs.streams if stream.type in ("video", "audio")]
        copies = {stream.index: output.add_stream_from_template(stream) for stream in kept}
        for packet in inputs.demux(*kept):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            _check(stop)
            packet.stream = copies[packet.stream.index]
            output.mux(packet)


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _video_filters(source: Any, found: VideoProbe) -> av.filter.Graph:
    """Decoded frames → constant frame rate, at most 1920 px wide, even size, yuv420p."""
    width = min(found.width, VIDEO_MAX_WIDTH)
    height = found.height * width / max(found.width, 1)
    fps = found.fps if VIDEO_MIN_FPS <= found.fps <= VIDEO_MAX_FPS else TARGET_FPS
    graph = av.filter.Graph()
    chain = [
        graph.add_buffer(template=source),
        *(graph.add(name, arguments) for name, arguments in UPRIGHT.get(found.turn, [])),
        graph.add("fps", f"fps={fps:g}"),
        graph.add("scale", f"{_even(width)}:{_even(height)}"),
        graph.add("format", "yuv420p"),
        graph.add("buffersink"),
    ]
    for upstream, downstream in pairwise(chain):
        upstream.link_to(downstream)
    graph.configure()
    return graph


def transcode(
    source: Path, target: Path, found: VideoProbe, stop: threading.Event | None = None
) -> None:
    """H.264/AAC MP4 with the moov atom first, within every limit; the length is kept."""
    fps = found.fps if VIDEO_MIN_FPS <= found.fps <= VIDEO_MAX_FPS else TARGET_FPS
    with (
        av.open(str(source)) as inputs,
        av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as output,
    ):
        video_in = inputs.streams.video[0]
        audio_in = inputs.streams.audio[0] if inputs.streams.audio else None
        graph = _video_filters(video_in, found)
        video_out = output.add_stream(
            "libx264",
            rate=Fraction(fps).limit_denominator(1001),
            options={
                "preset": "veryfast",
                "crf": "23",
                "maxrate": TARGET_VIDEO_BITRATE,
                "bufsize": "16M",
                "profile": "high",
            },
        )
        video_out.width = _even(min(found.width, VIDEO_MAX_WIDTH))
        video_out.height = _even(
            found.height * min(found.width, VIDEO_MAX_WIDTH) / max(found.width, 1)
        )
        video_out.pix_fmt = "yuv420p"
        audio_out = None
        if audio_in is not None:
            audio_out = output.add_stream("aac", rate=TARGET_AUDIO_RATE)
            audio_out.bit_rate = TARGET_AUDIO_BITRATE
            audio_out.layout = "stereo"
        streams = [video_in] if audio_in is None else [video_in, audio_in]
        for packet in inputs.demux(*streams):
            _check(stop)
            for decoded in packet.decode():
                if isinstance(decoded, av.VideoFrame):
                    graph.push(decoded)
                    _drain(graph, video_out, output)
                elif isinstance(decoded, av.AudioFrame) and audio_out is not None:
                    decoded.pts = None
                    output.mux(audio_out.encode(decoded))
        graph.push(None)
        _drain(graph, video_out, output)
        output.mux(video_out.encode(None))
        if audio_out is not None:
            output.mux(audio_out.encode(None))


def _drain(graph: av.filter.Graph, stream: Any, output: Any) -> None:
    while True:
        try:
            filtered = graph.pull()
        except (BlockingIOError, EOFError):
            # The graph wants more input, or it is flushed.
            return
        output.mux(stream.encode(filtered))
