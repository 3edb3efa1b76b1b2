"""`check`: the store takes, presigns, serves and deletes an object; the folder serves a file."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from bot.config import Settings, parse_store_url
from bot.services.media_host.folder import PREPARED_FOLDER, PreparedFolder
from bot.services.media_host.store import S3Store, create_s3_client

_PROBE = b"storyqueue check: Instagram fetches Story media from here\n"
_STORE_FIX = (
    "check MEDIA_PUBLIC_STORE and the AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and"
    " AWS_SECRET_ACCESS_KEY the bot sees; the keys need PutObject, GetObject, DeleteObject"
)


@dataclass(frozen=True, slots=True)
class HostCheck:
    """One line of `check`: passed or not, what was seen, and what to do about it."""

    ok: bool
    detail: str
    fix: str = ""


async def check_media_store(
    settings: Settings, http: httpx.AsyncClient, *, timeout_seconds: float
) -> HostCheck:
    """Upload a tiny object, presign it, fetch it back without credentials, delete it.

    Each store call is tried once and waits at most `timeout_seconds` per read.
    """
    assert settings.media_public_store is not None
    location = parse_store_url(settings.media_public_store)
    where = f"s3://{location.bucket}/{location.prefix}"
    try:
        client = await asyncio.to_thread(create_s3_client, timeout_seconds=timeout_seconds)
        store = S3Store(client, location)
        key = f".check-{uuid.uuid4().hex}.txt"
        url = await store.put_bytes(key, _PROBE, "text/plain")
    except (BotoCoreError, ClientError) as error:
        return HostCheck(False, f"upload to {where} failed: {error}", _STORE_FIX)
    try:
        response = await _get(http, url, timeout_seconds)
        fetched = response.is_success and response.content == _PROBE
        answer = f"{response.status_code}"
    except (httpx.HTTPError, TimeoutError) as error:
        fetched, answer = False, type(error).__name__
    try:
        await store.remove_key(key)
        removed = ""
    except (BotoCoreError, ClientError) as error:
        removed = f"; deleting it failed ({error}), so the lifecycle rule will"
    if not fetched:
        return HostCheck(
            False,
            f"uploaded to {where}, but its presigned URL answered {answer}{removed}",
            "the presigned URL must be reachable from the internet: check the endpoint"
            " (AWS_ENDPOINT_URL) is the public one",
        )
    if removed:
        return HostCheck(False, f"uploaded and fetched back{removed}", _STORE_FIX)
    return HostCheck(True, f"{where}: uploaded, presigned, fetched back and deleted")


def first_prepared_file(media_dir: Path) -> Path | None:
    folder = media_dir / PREPARED_FOLDER
    if not folder.is_dir():
        return None
    # Skipping each entry's dot-named .lock and partial files: only a finished file is served.
    finished = [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    ]
    # The smallest: fetched whole within the check's few seconds (a video may be 100 MB).
    return min(finished, key=lambda path: path.stat().st_size, default=None)


async def _get(http: httpx.AsyncClient, url: str, timeout_seconds: float) -> httpx.Response:
    """GET, the whole answer bounded: httpx times each read, and a trickle never trips that."""
    async with asyncio.timeout(2 * timeout_seconds + 1):
        return await http.get(url)


async def check_prepared_folder(
    settings: Settings, http: httpx.AsyncClient, *, timeout_seconds: float
) -> HostCheck | None:
    """Fetch one prepared file at MEDIA_PUBLIC_BASE_URL; None when none is prepared yet."""
    assert settings.media_public_base_url is not None
    prepared = first_prepared_file(settings.media_dir)
    if prepared is None:
        return None
    url = PreparedFolder(settings.media_dir, settings.media_public_base_url).url_of(prepared)
    fix = (
        f"serve MEDIA_DIR (with its {PREPARED_FOLDER.as_posix()} folder) publicly over HTTPS"
        " at MEDIA_PUBLIC_BASE_URL; Instagram fetches each Story from there"
    )
    try:
        response = await _get(http, url, timeout_seconds)
    except (httpx.HTTPError, TimeoutError) as error:
        return HostCheck(False, f"GET {url} did not answer ({type(error).__name__})", fix)
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    if response.is_success and response.content == prepared.read_bytes():
        return HostCheck(True, f"GET {url}: {response.status_code} {kind}")
    return HostCheck(False, f"GET {url}: {response.status_code} {kind or 'no content type'}", fix)
