"""MEDIA_PUBLIC_BASE_URL: the operator serves MEDIA_DIR; prepared files live in one folder."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from bot.services.media_host.host import HostedMedia, MediaHostError, Prepared

# Under MEDIA_DIR, served like the rest of it at MEDIA_PUBLIC_BASE_URL/.storyqueue/prepared/.
PREPARED_FOLDER = Path(".storyqueue") / "prepared"


class PreparedFolder:
    """The URL of a file under MEDIA_DIR (the original, or its prepared copy) at the base URL."""

    def __init__(self, media_dir: Path, base_url: str) -> None:
        # abspath, not resolve: a symlink inside MEDIA_DIR is served at its own path.
        self._media_dir = Path(os.path.abspath(media_dir))
        self._base_url = base_url.rstrip("/")

    def url_of(self, path: Path) -> str:
        try:
            relative = Path(os.path.abspath(path)).relative_to(self._media_dir)
        except ValueError:
            raise MediaHostError(f"{path} is not under MEDIA_DIR, so no URL serves it") from None
        return f"{self._base_url}/{quote(relative.as_posix())}"

    async def put(self, prepared: Prepared) -> HostedMedia:
        # Nothing to upload: the prepared file is already where the web server serves it.
        return HostedMedia(self.url_of(prepared.path))

    def placed(self, prepared: Prepared) -> HostedMedia:
        return HostedMedia(self.url_of(prepared.path))

    async def remove(self, hosted: HostedMedia) -> None:
        """Kept: the prepared cache serves the next press of the same item."""
