"""MEDIA_PUBLIC_STORE: upload the prepared file to S3 (R2, B2, MinIO) and presign a GET.

boto3 blocks, so every call runs in a thread. The key is the content's sha256, so
an upload whose answer was lost is simply sent again: it lands on the same object.
"""

from __future__ import annotations

import asyncio
import mimetypes
from typing import TYPE_CHECKING

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.config import StoreLocation
from bot.services.media_host.host import HostedMedia, MediaHostError, Prepared

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = structlog.get_logger(__name__)

# Meta downloads the media while the container is processed, which the bot waits for
# at most 5 minutes (the Content Publishing guide's pace); a re-press presigns anew.
# One hour covers that wait many times over and a slow store, yet a URL that leaks
# (logs, Meta's side) stops working the same hour.
PRESIGNED_URL_SECONDS = 3600
# botocore repeats a PutObject whose answer was lost (a reset, a read timeout): the
# same key and body, so at most the same object is written again.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=10,
    # SigV4: what R2, B2 and MinIO accept, and the only presigning newer regions take.
    signature_version="s3v4",
)


def create_s3_client(*, timeout_seconds: float | None = None) -> S3Client:
    """A client configured the way every AWS tool is: AWS_ENDPOINT_URL, AWS_REGION, keys.

    With `timeout_seconds` (`check`): each call tried once, no read waiting longer.
    """
    config = _CONFIG
    if timeout_seconds is not None:
        # botocore's defaults (a 60 s read, 5 attempts) would let a silent store hang `check`.
        config = config.merge(
            Config(
                connect_timeout=timeout_seconds,
                read_timeout=timeout_seconds,
                retries={"mode": "standard", "total_max_attempts": 1},
            )
        )
    return boto3.session.Session().client("s3", config=config)


def _extension(prepared: Prepared) -> str:
    suffix = prepared.path.suffix.lower()
    return suffix or mimetypes.guess_extension(prepared.content_type) or ""


class S3Store:
    def __init__(self, client: S3Client, location: StoreLocation) -> None:
        self._client = client
        self._location = location

    def key_for(self, prepared: Prepared) -> str:
        return f"{self._location.prefix}{prepared.sha256}{_extension(prepared)}"

    def _upload(self, prepared: Prepared, key: str) -> str:
        with prepared.path.open("rb") as body:
            self._client.put_object(
                Bucket=self._location.bucket,
                Key=key,
                Body=body,
                ContentType=prepared.content_type,
            )
        return self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self._location.bucket, "Key": key},
            ExpiresIn=PRESIGNED_URL_SECONDS,
        )

    async def put(self, prepared: Prepared) -> HostedMedia:
        key = self.key_for(prepared)
        try:
            url = await asyncio.to_thread(self._upload, prepared, key)
        except (BotoCoreError, ClientError) as error:
            raise MediaHostError(
                f"the upload to s3://{self._location.bucket}/{key} failed ({error})"
            ) from None
        logger.info("media_host.uploaded", key=key, size=prepared.size)
        return HostedMedia(url, key)

    def placed(self, prepared: Prepared) -> HostedMedia:
        return HostedMedia("", self.key_for(prepared))

    async def remove(self, hosted: HostedMedia) -> None:
        await asyncio.to_thread(
            self._client.delete_object, Bucket=self._location.bucket, Key=hosted.key
        )
        logger.info("media_host.removed", key=hosted.key)

    # For `check`: the whole round trip with a throwaway object.

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> str:
        """Upload `data` under prefix + key; the presigned GET URL of it."""

        def upload() -> str:
            full_key = f"{self._location.prefix}{key}"
            self._client.put_object(
                Bucket=self._location.bucket, Key=full_key, Body=data, ContentType=content_type
            )
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._location.bucket, "Key": full_key},
                ExpiresIn=PRESIGNED_URL_SECONDS,
            )

        return await asyncio.to_thread(upload)

    async def remove_key(self, key: str) -> None:
        await asyncio.to_thread(
            self._client.delete_object,
            Bucket=self._location.bucket,
            Key=f"{self._location.prefix}{key}",
        )
