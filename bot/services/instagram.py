"""Instagram Graph API client for Story publishing (docs/architecture.md §7).

Each method is one Graph call (or one poll loop of them), so quota checks and
token care can be composed around them. Every failure says whether the request
may have reached Instagram: only then is its outcome unknown.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
import structlog

from db.vocabulary import STORY_METRICS

logger = structlog.get_logger(__name__)

RATE_LIMIT_CODES = {4, 17, 32, 613}
EXPIRED_TOKEN_CODE = 190
NOT_READY_CODES = {9007, 2207027}
DOWNLOAD_FAILED_CODES = {2207052}
# Code 10 on a Story's insights: too few viewers to show them (also the code of a
# missing permission, which its message tells apart); 200: a permissions error.
NOT_ENOUGH_VIEWERS_CODE = 10
PERMISSION_CODE = 200
INSIGHTS_PERMISSIONS = "instagram_business_manage_insights or instagram_manage_insights"
_GRAPH_CODE = re.compile(r"\b(\d{4,7})\b")
# The version segment of INSTAGRAM_GRAPH_URL ("/v21.0"); refresh_access_token has none.
_VERSION_SEGMENT = re.compile(r"/v\d+(\.\d+)?$")
# Content Publishing guide ("Troubleshooting"): query a container's status "once per
# minute, for no more than 5 minutes". The settings default to that pace.
DOCUMENTED_POLL_INTERVAL_SECONDS = 60.0
DOCUMENTED_PUBLISH_TIMEOUT_SECONDS = 300.0


class InstagramFailure(StrEnum):
    RATE_LIMIT = "rate_limit"
    TOKEN_EXPIRED = "token_expired"
    NOT_READY = "not_ready"
    DOWNLOAD_FAILED = "download_failed"
    CONTAINER_ERROR = "container_error"
    CONTAINER_EXPIRED = "container_expired"
    STILL_PROCESSING = "still_processing"
    UNREACHABLE = "unreachable"  # the request never left: nothing happened
    NO_ANSWER = "no_answer"  # a timeout or a reset after the request may have arrived
    SERVER_ERROR = "server_error"  # a 5xx: the request may have been acted on
    API = "api"
    QUOTA_REACHED = "quota_reached"  # checked before any container is made
    NO_PERMISSION = "no_permission"  # the token lacks a permission the call needs
    MEDIA_HOSTING = "media_hosting"  # preparing or hosting the media failed; nothing was sent


CAUSES = {
    InstagramFailure.RATE_LIMIT: "Instagram's rate limit was reached; try again later",
    InstagramFailure.TOKEN_EXPIRED: (
        "the Instagram access token is invalid, expired or revoked; an admin must put a new "
        "long-lived token in the configuration and restart the bot"
    ),
    InstagramFailure.NOT_READY: "Instagram had not finished processing the media",
    InstagramFailure.DOWNLOAD_FAILED: "Instagram could not download the media from its URL",
    InstagramFailure.CONTAINER_ERROR: "Instagram could not process the media",
    InstagramFailure.CONTAINER_EXPIRED: "Instagram's upload expired before publishing",
    InstagramFailure.STILL_PROCESSING: "Instagram was still processing the media",
    InstagramFailure.UNREACHABLE: "Instagram could not be reached",
    InstagramFailure.NO_ANSWER: "Instagram did not answer",
    InstagramFailure.SERVER_ERROR: "Instagram had a server error",
    InstagramFailure.API: "Instagram refused the request",
    InstagramFailure.QUOTA_REACHED: "the daily Instagram publishing limit is reached",
    InstagramFailure.NO_PERMISSION: "the Instagram token lacks a permission this needs",
    InstagramFailure.MEDIA_HOSTING: "the media could not be put where Instagram fetches it",
}


class InstagramError(Exception):
    def __init__(
        self,
        failure: InstagramFailure,
        detail: str = "",
        *,
        codes: tuple[int, ...] = (),
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(f"{failure.value}: {detail}" if detail else failure.value)
        self.failure = failure
        self.detail = detail
        self.codes = codes
        # True when the request may have reached Instagram and taken effect.
        self.outcome_unknown = outcome_unknown

    @property
    def reference(self) -> str:
        """Instagram's own error codes (e.g. "error 9007/2207027"), or what the transport said."""
        codes = "error " + "/".join(str(code) for code in self.codes) if self.codes else ""
        if self.failure is InstagramFailure.SERVER_ERROR:
            return ", ".join(part for part in (self.detail, codes) if part)
        return codes or self.detail

    @property
    def cause(self) -> str:
        """A plain-text sentence naming the cause and Instagram's code; never holds the token."""
        reference = self.reference
        return f"{CAUSES[self.failure]} ({reference})" if reference else CAUSES[self.failure]


def _failure_for(codes: set[int], status_code: int) -> InstagramFailure:
    if codes & RATE_LIMIT_CODES or status_code == 429:
        return InstagramFailure.RATE_LIMIT
    if EXPIRED_TOKEN_CODE in codes or status_code == 401:
        return InstagramFailure.TOKEN_EXPIRED
    if codes & DOWNLOAD_FAILED_CODES:
        return InstagramFailure.DOWNLOAD_FAILED
    if codes & NOT_READY_CODES:
        return InstagramFailure.NOT_READY
    if PERMISSION_CODE in codes:
        return InstagramFailure.NO_PERMISSION
    return InstagramFailure.API


class ContainerStatus(StrEnum):
    """A container's `status_code`, as Graph spells it."""

    IN_PROGRESS = "IN_PROGRESS"
    FINISHED = "FINISHED"  # ready; not published yet
    PUBLISHED = "PUBLISHED"
    ERROR = "ERROR"
    EXPIRED = "EXPIRED"  # not published within 24 hours

    @classmethod
    def read(cls, code: str) -> ContainerStatus | None:
        """The status `code` names; None for one this client does not know."""
        try:
            return cls(code)
        except ValueError:
            return None


# The container will never publish: what it made (if anything) is no Story.
CONTAINER_FAILED = frozenset({ContainerStatus.ERROR, ContainerStatus.EXPIRED})


@dataclass(frozen=True, slots=True)
class ContainerState:
    """A container's status as Graph answered it (`code` verbatim, for the logs)."""

    code: str
    detail: str = ""

    @property
    def status(self) -> ContainerStatus | None:
        return ContainerStatus.read(self.code)

    def error(self) -> InstagramError:
        """The failure an ERROR or EXPIRED container stands for, with Instagram's code."""
        if self.status is ContainerStatus.EXPIRED:
            return InstagramError(InstagramFailure.CONTAINER_EXPIRED, f"status {self.code}")
        codes = tuple(int(code) for code in _GRAPH_CODE.findall(self.detail))
        failure = (
            InstagramFailure.DOWNLOAD_FAILED
            if set(codes) & DOWNLOAD_FAILED_CODES
            else InstagramFailure.CONTAINER_ERROR
        )
        return InstagramError(failure, f"status {self.code}", codes=codes)


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
        publish_timeout_seconds: float = DOCUMENTED_PUBLISH_TIMEOUT_SECONDS,
        poll_interval_seconds: float = DOCUMENTED_POLL_INTERVAL_SECONDS,
    ) -> None:
        self._http = http
        self._base = graph_url.rstrip("/")
        self._unversioned = _VERSION_SEGMENT.sub("", self._base)
        self._user_id = user_id
        # In a header, not the query string, so no URL that gets logged carries it.
        self._headers: dict[str, str] = {}
        self._token = ""
        self.set_access_token(access_token)
        self._publish_timeout = publish_timeout_seconds
        self._poll_interval = poll_interval_seconds

    async def _call(
        self,
        method: str,
        path: str,
        *,
        base: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        url = f"{base or self._base}/{path}"
        try:
            response = await self._http.request(
                method, url, headers=self._headers if headers is None else headers, **kwargs
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as unsent:
            # Never connected (or never got a connection): the request did not leave.
            raise InstagramError(InstagramFailure.UNREACHABLE, type(unsent).__name__) from None
        except httpx.HTTPError as unanswered:
            # Sent, then a timeout or a reset: Instagram may have acted on it.
            raise InstagramError(
                InstagramFailure.NO_ANSWER, type(unanswered).__name__, outcome_unknown=True
            ) from None
        try:
            decoded = response.json()
        except ValueError:
            decoded = None
        # Anything but an object (a proxy's `[]`, say) answers nothing the callers read.
        body: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
        error = body.get("error")
        if response.is_error or error:
            details = error if isinstance(error, dict) else {}
            codes = tuple(
                int(value)
                for value in (details.get("code"), details.get("error_subcode"))
                if isinstance(value, int) or (isinstance(value, str) and value.isdecimal())
            )
            # Graph error messages can quote the token back; they are logged.
            message = str(details.get("message", "")).replace(self._token, "[REDACTED]")[:200]
            failure = _failure_for(set(codes), response.status_code)
            if failure is InstagramFailure.API and response.status_code >= 500:
                raise InstagramError(
                    InstagramFailure.SERVER_ERROR,
                    f"HTTP {response.status_code}",
                    codes=codes,
                    outcome_unknown=True,
                )
            raise InstagramError(
                failure, message or f"HTTP {response.status_code}", codes=codes or ()
            )
        return body

    async def create_story_container(self, media_url: str, *, video: bool) -> str:
        # IG User Media reference (POST /<IG_USER_ID>/media, media_type=STORIES): Meta
        # downloads image_url / video_url itself, so the URL must be public.
        data = {"media_type": "STORIES", ("video_url" if video else "image_url"): media_url}
        body = await self._call("POST", f"{self._user_id}/media", data=data)
        if not body.get("id"):
            raise InstagramError(InstagramFailure.API, "no container id in the answer")
        return str(body["id"])

    async def container_status(self, container_id: str) -> ContainerState:
        # IG Container reference (GET /<IG_CONTAINER_ID>?fields=status_code,status).
        body = await self._call("GET", container_id, params={"fields": "status_code,status"})
        return ContainerState(str(body.get("status_code", "")), str(body.get("status", "")))

    async def wait_until_ready(self, container_id: str) -> None:
        """Poll the container until FINISHED, within the publish timeout.

        The pace is the Content Publishing guide's (once a minute, at most 5 minutes)
        unless the settings shorten it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout
        while True:
            status = await self.container_status(container_id)
            if status.status is ContainerStatus.FINISHED:
                return
            if status.status in CONTAINER_FAILED:
                raise status.error()
            if loop.time() + self._poll_interval > deadline:
                raise InstagramError(
                    InstagramFailure.STILL_PROCESSING,
                    f"status {status.code or 'unknown'} after {self._publish_timeout:g} s",
                )
            await asyncio.sleep(self._poll_interval)

    async def publish(self, container_id: str) -> str:
        """media_publish: a container publishes at most once, so a repeat cannot double it."""
        # IG User Media Publish reference (POST /<IG_USER_ID>/media_publish?creation_id=…).
        body = await self._call(
            "POST", f"{self._user_id}/media_publish", data={"creation_id": container_id}
        )
        if not body.get("id"):
            # Answered, but not with a media id: whether it published is for the status to say.
            raise InstagramError(
                InstagramFailure.API, "no media id in the answer", outcome_unknown=True
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
        # IG User Content Publishing Limit reference; quota_total is read, never assumed.
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
        # Instagram Platform "Refresh access token" reference: exactly
        # GET graph.instagram.com/refresh_access_token?grant_type=ig_refresh_token&access_token=…
        # with no version in the path and the token in the query (not a header).
        body = await self._call(
            "GET",
            "refresh_access_token",
            base=self._unversioned,
            params={"grant_type": "ig_refresh_token", "access_token": self._token},
            headers={},
        )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise InstagramError(InstagramFailure.API, "no token in the refresh answer")
        expires_in = body.get("expires_in")
        return token, int(expires_in) if isinstance(expires_in, int | float) else None

    async def token_expiry(self) -> datetime | None:
        """Facebook Login only: when the token expires (None: never), by /debug_token."""
        # Graph API "Debug token" reference (GET /debug_token?input_token=…).
        body = await self._call("GET", "debug_token", params={"input_token": self._token})
        data = body.get("data") or {}
        expires = data.get("expires_at") if isinstance(data, dict) else None
        if not isinstance(expires, int) or expires <= 0:
            return None
        return datetime.fromtimestamp(expires, UTC)

    async def live_stories(self) -> list[LiveStory]:
        """The Stories live on the account now (Instagram keeps them 24 hours)."""
        # IG User Stories reference (GET /<IG_USER_ID>/stories).
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

    async def story_insights(self, media_id: str) -> StoryInsights:
        """A live Story's insights; a metric Instagram leaves out has no data yet (None).

        Error 10 ("not enough viewers") is an answer, not a failure: no figures yet.
        Code 10 naming a permission, or code 200, is NO_PERMISSION.
        """
        try:
            # IG Media Insights reference (GET /<IG_MEDIA_ID>/insights, Story metrics).
            body = await self._call(
                "GET", f"{media_id}/insights", params={"metric": ",".join(STORY_METRICS)}
            )
        except InstagramError as error:
            if _names_a_permission(error):
                raise InstagramError(
                    InstagramFailure.NO_PERMISSION, error.detail, codes=error.codes
                ) from None
            if error.failure is InstagramFailure.API and NOT_ENOUGH_VIEWERS_CODE in error.codes:
                return StoryInsights(values={}, note="not_enough_viewers")
            raise
        values: dict[str, int] = {}
        for entry in body.get("data") or []:
            if not isinstance(entry, dict) or entry.get("name") not in STORY_METRICS:
                continue
            value = _metric_value(entry)
            if value is not None:
                values[str(entry["name"])] = value
        return StoryInsights(values=values, note=None)

    async def username(self) -> str:
        """The account's username (its id when it has none): proves the token works for it."""
        body = await self._call("GET", self._user_id, params={"fields": "id,username"})
        return str(body.get("username") or body.get("id") or self._user_id)

    async def require_insights_permission(self) -> None:
        """Raise NO_PERMISSION unless the token may read insights (asked of the account's own)."""
        try:
            await self._call(
                "GET", f"{self._user_id}/insights", params={"metric": "reach", "period": "day"}
            )
        except InstagramError as error:
            if _names_a_permission(error):
                raise InstagramError(
                    InstagramFailure.NO_PERMISSION, error.detail, codes=error.codes
                ) from None
            raise


def _names_a_permission(error: InstagramError) -> bool:
    """Code 10 is "not enough viewers" unless its message names a missing permission."""
    return (
        error.failure is InstagramFailure.API
        and NOT_ENOUGH_VIEWERS_CODE in error.codes
        and "permission" in error.detail.lower()
    )


def _metric_value(entry: dict[str, Any]) -> int | None:
    """`values[0].value` (media insights) or `total_value.value` (newer answers)."""
    total = entry.get("total_value")
    if isinstance(total, dict) and isinstance(total.get("value"), int):
        return max(0, int(total["value"]))
    points = entry.get("values")
    if isinstance(points, list) and points and isinstance(points[-1], dict):
        value = points[-1].get("value")
        if isinstance(value, int):
            return max(0, value)
    return None


@dataclass(frozen=True, slots=True)
class StoryInsights:
    values: dict[str, int]  # only the metrics Instagram answered
    note: str | None  # why there are no figures, e.g. "not_enough_viewers"


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
