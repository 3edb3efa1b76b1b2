"""Prepared files on disk: one folder per (source content, framing, preparation version).

A prepared file is named by the sha256 of its own bytes and appears by rename,
so a crash leaves at most a dot-named partial file that is never read as done.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HASH_CHUNK = 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def entry_key(source_hash: str, setting: str, version: int) -> str:
    """The cache folder's name: what the prepared bytes depend on, and nothing else."""
    return hashlib.sha256(f"{source_hash}/{setting}/v{version}".encode()).hexdigest()[:32]


def cached(entry: Path, suffix: str) -> Path | None:
    """The finished file in an entry folder, if a previous preparation completed."""
    try:
        names = sorted(os.listdir(entry))
    except FileNotFoundError:
        return None
    for name in names:
        if not name.startswith(".") and name.endswith(suffix):
            return entry / name
    return None


def partial_path(entry: Path, suffix: str) -> Path:
    """Where a preparation writes before the rename; dot-named, so never taken for done."""
    entry.mkdir(parents=True, exist_ok=True)
    return entry / f".partial-{uuid.uuid4().hex}{suffix}"


def clear_partials(entry: Path) -> None:
    """Remove partial files; call it holding the entry's lock (their writers are dead)."""
    for leftover in entry.glob(".partial-*"):
        leftover.unlink(missing_ok=True)


def publish(partial: Path, suffix: str) -> tuple[Path, str, int]:
    """Fsync and rename the partial file to its content name: (path, sha256, size)."""
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    digest = file_sha256(partial)
    final = partial.with_name(f"{digest}{suffix}")
    size = partial.stat().st_size
    os.replace(partial, final)
    return final, digest, size


@contextmanager
def entry_lock(entry: Path) -> Iterator[None]:
    """One preparation of an entry at a time, across threads and processes."""
    entry.mkdir(parents=True, exist_ok=True)
    with open(entry / ".lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
