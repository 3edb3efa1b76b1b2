"""A fake Instagram Graph API with state: containers, Stories, and faults around publishing.

The same state serves respx (tests in this process) and a tiny aiohttp server on
127.0.0.1 (the real `python -m bot run` in a subprocess, via INSTAGRAM_GRAPH_URL).
It counts what matters: containers created and media_publish calls, and the
Stories that really went live.

With `fetch_media`, container creation does what Meta does (IG User Media, Story
specs): it downloads image_url / video_url itself over HTTP and refuses an image
that is not a JPEG (or over 8 MiB), and a video that is not H.264/HEVC, outside
3-60 s, or without its moov atom before the media data. The refresh endpoint
answers only its documented shape (the server's root, not under /v21.0).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import av
import httpx
import respx
from aiohttp import web

from bot.services.instagram import ContainerStatus
from tests.helpers.fake_bot_api import serve_on_loopback


class Timeout(Exception):
    """Stands for a publish whose answer never comes (respx raises ReadTimeout)."""


@dataclass
class GraphState:
    user_id: str
    containers: dict[str, str] = field(default_factory=dict)  # id -> status_code
    statuses: dict[str, str] = field(default_factory=dict)  # id -> container `status` text
    stories: list[tuple[str, datetime]] = field(default_factory=list)  # (media id, when)
    creates: int = 0
    publish_calls: list[str] = field(default_factory=list)
    # What each media_publish does, in order (then "ok"): "ok"; "timeout_after"
    # (publishes, then the answer is lost); "502_before" (fails before publishing);
    # "hang_after" (publishes, then never answers).
    publish_faults: list[str] = field(default_factory=list)
    # Status polls after publishing-fault answers can be forced, e.g. {"container-1": ContainerStatus.ERROR}.
    forced_status: dict[str, str] = field(default_factory=dict)
    status_after_publish: dict[str, str] = field(default_factory=dict)  # applied at a publish
    # Answers read once each before the container's own status (a stale replica, say).
    status_sequence: dict[str, list[str]] = field(default_factory=dict)
    status_fails: int = 0  # this many status reads fail with a 500 first
    status_fails_after_publish: int = 0  # moved to status_fails at a publish
    # Run once, at the next media_publish before it answers: faults that begin then.
    on_publish: list[Callable[[], None]] = field(default_factory=list)
    status_error: tuple[int, dict[str, Any]] | None = None  # every status read answers this
    # What debug_token says of the token's expiry (epoch seconds); 0: it never expires.
    token_expires_at: int = 0
    # Story insights: like Instagram, a Story is listed and readable for 24 hours
    # (by `clock`), its figures grow with its age, and a small one answers error 10.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    reach_per_hour: dict[str, int] = field(default_factory=dict)  # media id -> growth
    small: set[str] = field(default_factory=set)  # too few viewers: error 10
    insights_error: tuple[int, dict[str, Any]] | None = None  # every insights read answers this
    insights_calls: list[str] = field(default_factory=list)
    insights_timeouts: int = 0  # this many insights reads are answered, then the answer is lost
    # Download each container's media and refuse what Meta refuses (see the module doc).
    fetch_media: bool = False
    fetched: list[Fetched] = field(default_factory=list)  # every download, refused or not
    refused: list[tuple[str, int]] = field(default_factory=list)  # (url, error_subcode)
    # Documented refresh_access_token calls seen: (token sent, token returned).
    refreshes: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self.published = asyncio.Event()

    def create(self, form: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        if self.fetch_media and form is not None:
            refusal = self._fetch_and_judge(form)
            if refusal is not None:
                return refusal
        self.creates += 1
        container = f"container-{next(self._ids)}"
        self.containers[container] = ContainerStatus.FINISHED
        return 200, {"id": container}

    def _fetch_and_judge(self, form: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        video = "video_url" in form
        url = form.get("video_url") or form.get("image_url") or ""
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                content_type = answer.headers.get("Content-Type", "")
                data = answer.read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            self.refused.append((url, 2207052))
            message = f"The media could not be fetched from this uri: {url} ({error})"
            return _refusal(9004, 2207052, message)
        self.fetched.append(Fetched(url, content_type, data, video))
        problem = judge_video(data) if video else judge_image(data)
        if problem is None:
            return None
        code, subcode, message = problem
        self.refused.append((url, subcode))
        return _refusal(code, subcode, message)

    def refresh(self, query: dict[str, str], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Instagram's refresh_access_token: the token in the query, never in a header."""
        token = query.get("access_token", "")
        authorization = any(name.lower() == "authorization" for name in headers)
        if query.get("grant_type") != "ig_refresh_token" or not token or authorization:
            return _refusal(100, 33, "Unsupported request: refresh_access_token takes its query")
        new = f"IGAA-refreshed-{len(self.refreshes) + 1}-" + "r" * 30
        self.refreshes.append((token, new))
        return 200, {"access_token": new, "token_type": "bearer", "expires_in": 5184000}

    def status(self, container: str) -> tuple[int, dict[str, Any]]:
        if container not in self.containers:
            return 400, {"error": {"code": 100, "message": "Unsupported get request"}}
        if self.status_error is not None:
            return self.status_error
        if self.status_fails:
            self.status_fails -= 1
            return 500, {"error": {"code": 2, "message": "Service temporarily unavailable"}}
        queued = self.status_sequence.get(container)
        code = (
            queued.pop(0)
            if queued
            else self.forced_status.get(container, self.containers[container])
        )
        body = {"status_code": code, "id": container}
        if container in self.statuses:
            body["status"] = self.statuses[container]
        return 200, body

    def publish(self, container: str) -> tuple[int, dict[str, Any], str]:
        """(status, body, fault) where fault says what to do with the answer."""
        self.publish_calls.append(container)
        fault = self.publish_faults.pop(0) if self.publish_faults else "ok"
        self.forced_status.update(self.status_after_publish)
        self.status_after_publish = {}
        self.status_fails += self.status_fails_after_publish
        self.status_fails_after_publish = 0
        hooks, self.on_publish = self.on_publish, []
        for hook in hooks:
            hook()
        if fault == "502_before":
            return 502, {"error": {"code": 1, "message": "An unknown error occurred"}}, fault
        if self.containers.get(container) != ContainerStatus.FINISHED:
            return 400, {"error": {"code": 9007, "error_subcode": 2207027}}, "ok"
        media_id = f"ig-media-{len(self.stories) + 1}"
        self.containers[container] = ContainerStatus.PUBLISHED
        self.stories.append((media_id, self.clock()))
        self.published.set()
        return 200, {"id": media_id}, fault

    def add_story(self, media_id: str, when: datetime, reach_per_hour: int = 60) -> None:
        """A Story that went live (by hand, say) at `when`."""
        self.stories.append((media_id, when))
        self.reach_per_hour[media_id] = reach_per_hour

    def _is_live(self, when: datetime) -> bool:
        return self.clock() - when < timedelta(hours=24)

    def live(self) -> tuple[int, dict[str, Any]]:
        data = [
            {"id": media_id, "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S+0000")}
            for media_id, when in reversed(self.stories)
            if self._is_live(when)
        ]
        return 200, {"data": data}

    def insights(self, media_id: str) -> tuple[int, dict[str, Any]]:
        self.insights_calls.append(media_id)
        if self.insights_error is not None:
            return self.insights_error
        when = dict(self.stories).get(media_id)
        if when is None or not self._is_live(when):
            message = f"Unsupported get request. Object with ID '{media_id}' does not exist"
            return 400, {"error": {"code": 100, "message": message}}
        if media_id in self.small:
            message = "(#10) Not enough viewers for the media to show insights"
            return 400, {"error": {"code": 10, "message": message}}
        age_hours = (self.clock() - when).total_seconds() / 3600
        if age_hours < 0.25:
            return 200, {"data": []}  # no data yet: every metric is left out
        reach = int(self.reach_per_hour.get(media_id, 60) * age_hours)
        figures = {
            "reach": reach,
            "views": 2 * reach,
            "replies": reach // 50,
            "shares": reach // 100,
            "navigation": reach // 2,
            "profile_visits": reach // 20,
            "follows": reach // 200,
            "total_interactions": reach // 50 + reach // 100,
        }
        data = [
            {"name": name, "period": "lifetime", "values": [{"value": value}], "id": media_id}
            for name, value in figures.items()
        ]
        return 200, {"data": data}


@dataclass(frozen=True)
class Fetched:
    url: str
    content_type: str
    data: bytes
    video: bool


def _refusal(code: int, subcode: int, message: str) -> tuple[int, dict[str, Any]]:
    """Graph's error shape (OAuthException with a code and an error_subcode)."""
    error = {"message": message, "type": "OAuthException", "code": code, "is_transient": False}
    return 400, {"error": {**error, "error_subcode": subcode, "fbtrace_id": "AfakeTrace"}}


_IMAGE_LIMIT = 8 * 1024 * 1024
_VIDEO_CODECS = {"h264", "hevc"}


def judge_image(data: bytes) -> tuple[int, int, str] | None:
    """Story images: JPEG only, at most 8 MiB (Meta's error codes for each)."""
    if not data.startswith(b"\xff\xd8\xff"):
        return 36001, 2207005, "The image format is not supported."
    if len(data) > _IMAGE_LIMIT:
        return 36000, 2207004, "The image is too large to download. It should be less than 8 MiB."
    return None


def _top_level_boxes(data: bytes) -> list[str]:
    """The ISO BMFF top-level box types, in file order."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1 and offset + 16 <= len(data):
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        elif size == 0:
            size = len(data) - offset
        if size < 8:
            break
        boxes.append(kind.decode("latin-1"))
        offset += size
    return boxes


def judge_video(data: bytes) -> tuple[int, int, str] | None:
    """Story videos: MP4/MOV, moov before mdat, H.264/HEVC, 3-60 s."""
    unsupported = "The video format is not supported. Please check spec for supported format."
    boxes = _top_level_boxes(data)
    if "moov" not in boxes or "mdat" not in boxes or boxes.index("moov") > boxes.index("mdat"):
        return 352, 2207026, f"{unsupported} (moov atom not at the front)"
    try:
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            duration = (
                float(container.duration) / av.time_base if container.duration is not None else 0.0
            )
    except (av.FFmpegError, IndexError) as error:
        return 352, 2207026, f"{unsupported} ({error})"
    if codec not in _VIDEO_CODECS:
        return 352, 2207026, f"{unsupported} (video codec {codec})"
    if not 3 <= duration <= 60:
        return 352, 2207026, f"{unsupported} (duration {duration:.1f} s)"
    return None


def install_respx(router: respx.MockRouter, state: GraphState) -> None:
    """Route the Graph calls of `state.user_id` to `state` (router has the Graph base URL)."""

    def create(request: httpx.Request) -> httpx.Response:
        status, body = state.create(dict(httpx.QueryParams(request.content.decode())))
        return httpx.Response(status, json=body)

    def status(request: httpx.Request, container: str) -> httpx.Response:
        code, body = state.status(container)
        return httpx.Response(code, json=body)

    def publish(request: httpx.Request) -> httpx.Response:
        container = dict(httpx.QueryParams(request.content.decode()))["creation_id"]
        code, body, fault = state.publish(container)
        if fault in ("timeout_after", "hang_after"):
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(code, json=body)

    def live(request: httpx.Request) -> httpx.Response:
        code, body = state.live()
        return httpx.Response(code, json=body)

    router.post(f"/{state.user_id}/media").mock(side_effect=create)
    router.post(f"/{state.user_id}/media_publish").mock(side_effect=publish)

    def insights(request: httpx.Request, media: str) -> httpx.Response:
        code, body = state.insights(media)
        if state.insights_timeouts:
            state.insights_timeouts -= 1
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(code, json=body)

    router.get(f"/{state.user_id}/stories").mock(side_effect=live)
    router.get(path__regex=r"/(?P<media>[^/]+)/insights$").mock(side_effect=insights)
    router.get(path__regex=r"/(?P<container>container-\d+)$").mock(side_effect=status)


class FakeGraphServer:
    """`state` behind aiohttp on 127.0.0.1; `hang_after` holds the answer until stop()."""

    def __init__(self, state: GraphState) -> None:
        self.state = state
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v21.0"

    @property
    def root(self) -> str:
        """Where unversioned endpoints live (refresh_access_token)."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/v21.0/{path:.*}", self._handle)
        app.router.add_route("*", "/refresh_access_token", self._refresh)
        self._runner, self.port = await serve_on_loopback(app)

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        user = self.state.user_id
        if path == "refresh_access_token":
            # The documented path has no version: this one does not exist.
            code, body = 404, {"error": {"code": 100, "message": "Unknown path components"}}
        elif request.method == "POST" and path == f"{user}/media":
            form = {key: str(value) for key, value in (await request.post()).items()}
            # Meta's download happens in a thread: the media may be served by this loop.
            code, body = await asyncio.to_thread(self.state.create, form)
        elif request.method == "POST" and path == f"{user}/media_publish":
            form = await request.post()
            code, body, fault = self.state.publish(str(form["creation_id"]))
            if fault in ("hang_after", "timeout_after"):
                await self._release.wait()
        elif request.method == "GET" and path == f"{user}/stories":
            code, body = self.state.live()
        elif request.method == "GET" and path.endswith("/insights"):
            code, body = self.state.insights(path.removesuffix("/insights"))
        elif request.method == "GET" and path == f"{user}/content_publishing_limit":
            code, body = 200, {"data": [{"quota_usage": 0, "config": {"quota_total": 50}}]}
        elif request.method == "GET" and path == "debug_token":
            code, body = 200, {"data": {"expires_at": self.state.token_expires_at}}
        elif request.method == "GET":
            code, body = self.state.status(path)
        else:
            code, body = 404, {"error": {"code": 100, "message": "unknown path"}}
        return web.json_response(body, status=code)

    async def _refresh(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            code, body = _refusal(100, 33, "Unsupported post request")
        else:
            code, body = self.state.refresh(dict(request.query), dict(request.headers))
        return web.json_response(body, status=code)
