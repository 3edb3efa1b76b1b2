"""Putting Auto Post media where Instagram can fetch it (docs/architecture.md §7).

Meta downloads each Story's media itself from a public URL. `MediaHost.url_for`
prepares the file (through the injected `prepare`) and hosts it: in an S3 bucket
under a presigned URL (MEDIA_PUBLIC_STORE), or in the prepared-files folder under
MEDIA_DIR that the operator serves at MEDIA_PUBLIC_BASE_URL.
"""

from bot.services.media_host.folder import PREPARED_FOLDER, PreparedFolder
from bot.services.media_host.host import (
    HostedMedia,
    HostingBackend,
    MediaHost,
    MediaHostError,
    MediaToHost,
    Prepare,
    Prepared,
    PreparedFile,
    original_unchanged,
    prepared_by,
    served_as_is,
)
from bot.services.media_host.store import PRESIGNED_URL_SECONDS, S3Store, create_s3_client

__all__ = [
    "PREPARED_FOLDER",
    "PRESIGNED_URL_SECONDS",
    "HostedMedia",
    "HostingBackend",
    "MediaHost",
    "MediaHostError",
    "MediaToHost",
    "Prepare",
    "Prepared",
    "PreparedFile",
    "PreparedFolder",
    "S3Store",
    "create_s3_client",
    "original_unchanged",
    "prepared_by",
    "served_as_is",
]
