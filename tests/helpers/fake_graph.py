"""A fake Instagram Graph API with state: containers, Stories, and faults around publishing.

The same state serves respx (tests in this process) and a tiny aiohttp server on
127.0.0.1 (the real `python -m bot run` in a subprocess, via INSTAGRAM_GRAPH_URL).
It counts what matters: containers created and media_publish calls, and the
Stories that really went live.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import respx
from aiohttp import web

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
    # Status polls after publishing-fault answers can be forced, e.g. {"container-1": "ERROR"}.
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

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self.published = asyncio.Event()

    def create(self) -> tuple[int, dict[str, Any]]:
        self.creates += 1
        container = f"container-{next(self._ids)}"
        self.containers[container] = "FINISHED"
        return 200, {"id": container}

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
        if self.containers.get(container) != "FINISHED":
            return 400, {"error": {"code": 9007, "error_subcode": 2207027}}, "ok"
        media_id = f"ig-media-{len(self.stories) + 1}"
        self.containers[container] = "PUBLISHED"
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


def install_respx(router: respx.MockRouter, state: GraphState) -> None:
    """Route the Graph calls of `state.user_id` to `state` (router has the Graph base URL)."""

    def create(request: httpx.Request) -> httpx.Response:
        status, body = state.create()
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

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/v21.0/{path:.*}", self._handle)
        self._runner, self.port = await serve_on_loopback(app)

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        user = self.state.user_id
        if request.method == "POST" and path == f"{user}/media":
            code, body = self.state.create()
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
