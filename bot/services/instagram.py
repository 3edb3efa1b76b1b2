"""Instagram Graph API client for Story publishing (design §6)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
import structlog

logger = structlog.get_logger(__name__)

RATE_LIMIT_CODES = {4, 17, 32, 613}
EXPIRED_TOKEN_CODE = 190


class InstagramFailure(StrEnum):
    RATE_LIMIT = "rate_limit"
    TOKEN_EXPIRED = "token_expired"
    CONTAINER_ERROR = "container_error"
    CONTAINER_EXPIRED = "container_expired"
    TIMEOUT = "timeout"
    NETWORK = "network"
    API = "api"
    QUOTA_REACHED = "quota_reached"


CAUSES = {
    InstagramFailure.RATE_LIMIT: "Instagram's rate limit was reached; try again later",
    InstagramFailure.TOKEN_EXPIRED: (
        "the Instagram access token has expired or was revoked; an admin must put a new "
        "long-lived token in the configuration and restart the bot"
    ),
    InstagramFailure.CONTAINER_ERROR: "Instagram could not process the media",
    InstagramFailure.CONTAINER_EXPIRED: "Instagram's upload expired before publishing",
    InstagramFailure.TIMEOUT: "Instagram took too long to process the media",
    InstagramFailure.NETWORK: "Instagram could not be reached",
    InstagramFailure.API: "Instagram refused the request",
    InstagramFailure.QUOTA_REACHED: "the daily Instagram publishing limit is reached",
}


class InstagramError(Exception):
    def __init__(self, failure: InstagramFailure, detail: str = "") -> None:
        super().__init__(f"{failure.value}: {detail}" if detail else failure.value)
        self.failure = failure
        self.detail = detail

    @property
    def cause(self) -> str:
        """A user-facing sentence naming the cause; never holds the token."""
        return CAUSES[self.failure]


def create_http_client(timeout_seconds: float = 20.0) -> httpx.AsyncClient:
    """The process's one HTTP client for the Graph API (closed at shutdown)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_seconds, connect=10.0),
        limits=httpx.Limits(max_connections=10),
    )


class InstagramClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        graph_url: str,
        user_id: str,
        access_token: str,
        publish_timeout_seconds: float = 60.0,
        poll_interval_seconds: float = 2.0,
    ) -> None:
        self._http = http
        self._base = graph_url.rstrip("/")
        self._user_id = user_id
        # In a header, not the query string, so no URL that gets logged carries it.
        self._headers: dict[str, str] = {}
        self._token = ""
        self.set_access_token(access_token)
        self._publish_timeout = publish_timeout_seconds
        self._poll_interval = poll_interval_seconds

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method, f"{self._base}/{path}", headers=self._headers, **kwargs
            )
        except httpx.TimeoutException as timeout:
            raise InstagramError(InstagramFailure.TIMEOUT, type(timeout).__name__) from None
        except httpx.HTTPError as failure:
            raise InstagramError(InstagramFailure.NETWORK, type(failure).__name__) from None
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        if response.is_error or error:
            code = error.get("code") if isinstance(error, dict) else None
            message = str(error.get("message", "")) if isinstance(error, dict) else ""
            # Graph error messages can quote the token back; they are logged.
            message = message.replace(self._token, "[REDACTED]")[:200]
            if code in RATE_LIMIT_CODES or response.status_code == 429:
                raise InstagramError(InstagramFailure.RATE_LIMIT, message)
            if code == EXPIRED_TOKEN_CODE:
                raise InstagramError(InstagramFailure.TOKEN_EXPIRED, message)
            if response.status_code >= 500:
                raise InstagramError(InstagramFailure.NETWORK, f"HTTP {response.status_code}")
            raise InstagramError(InstagramFailure.API, message or f"HTTP {response.status_code}")
        return body

    async def create_story_container(self, media_url: str, *, video: bool) -> str:
        data = {"media_type": "STORIES", ("video_url" if video else "image_url"): media_url}
        body = await self._call("POST", f"{self._user_id}/media", data=data)
        return str(body["id"])

    async def wait_until_ready(self, container_id: str) -> None:
        """Poll the container until FINISHED, within the publish timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout
        while True:
            body = await self._call("GET", container_id, params={"fields": "status_code"})
            status = body.get("status_code")
            if status == "FINISHED":
                return
            if status == "ERROR":
                raise InstagramError(InstagramFailure.CONTAINER_ERROR, str(body.get("status", "")))
            if status == "EXPIRED":
                raise InstagramError(InstagramFailure.CONTAINER_EXPIRED)
            if loop.time() + self._poll_interval > deadline:
                raise InstagramError(InstagramFailure.TIMEOUT, f"last status {status}")
            await asyncio.sleep(self._poll_interval)

    async def publish(self, container_id: str) -> str:
        body = await self._call(
            "POST", f"{self._user_id}/media_publish", data={"creation_id": container_id}
        )
        return str(body["id"])

    # Account care (issue 14): quota, token lifetime, live Stories.

    @property
    def user_id(self) -> str:
        return self._user_id

    @property
    def access_token(self) -> str:
        return self._token

    def set_access_token(self, token: str) -> None:
        """Use a refreshed (or newly configured) token from the next request on."""
        self._headers = {"Authorization": f"Bearer {token}"}
        self._token = token

    async def publishing_limit(self) -> PublishingQuota:
        body = await self._call(
            "GET",
            f"{self._user_id}/content_publishing_limit",
            params={"fields": "quota_usage,config"},
        )
        entries = body.get("data") or [{}]
        entry = entries[0] if isinstance(entries[0], dict) else {}
        config = entry.get("config") or {}
        return PublishingQuota(
            used=int(entry.get("quota_usage") or 0),
            total=int(config.get("quota_total") or DEFAULT_QUOTA_TOTAL),
            window_seconds=int(config.get("quota_duration") or 86400),
        )

    async def refresh_access_token(self) -> tuple[str, int | None]:
        """Instagram Login only: a new long-lived token and its lifetime in seconds."""
        body = await self._call(
            "GET", "refresh_access_token", params={"grant_type": "ig_refresh_token"}
        )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise InstagramError(InstagramFailure.API, "no token in the refresh answer")
        expires_in = body.get("expires_in")
        return token, int(expires_in) if isinstance(expires_in, int | float) else None

    async def token_expiry(self) -> datetime | None:
        """Facebook Login only: when the token expires (None: never), by /debug_token."""
        body = await self._call("GET", "debug_token", params={"input_token": self._token})
        data = body.get("data") or {}
        expires = data.get("expires_at") if isinstance(data, dict) else None
        if not isinstance(expires, int) or expires <= 0:
            return None
        return datetime.fromtimestamp(expires, UTC)

    async def live_stories(self) -> list[LiveStory]:
        """The Stories live on the account now (Instagram keeps them 24 hours)."""
        body = await self._call(
            "GET", f"{self._user_id}/stories", params={"fields": "id,timestamp,media_type"}
        )
        stories = []
        for entry in body.get("data") or []:
            if not isinstance(entry, dict) or "id" not in entry:
                continue
            posted = _parse_timestamp(entry.get("timestamp"))
            stories.append(
                LiveStory(
                    media_id=str(entry["id"]),
                    posted_at=posted,
                    media_type=str(entry.get("media_type") or ""),
                )
            )
        return stories


DEFAULT_QUOTA_TOTAL = 50


@dataclass(frozen=True, slots=True)
class PublishingQuota:
    used: int
    total: int
    window_seconds: int

    @property
    def reached(self) -> bool:
        return self.used >= self.total


@dataclass(frozen=True, slots=True)
class LiveStory:
    media_id: str
    posted_at: datetime | None
    media_type: str


def _parse_timestamp(value: object) -> datetime | None:
    """Graph timestamps look like 2024-05-01T12:00:00+0000."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
    except ValueError:
        return None
