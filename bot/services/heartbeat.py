"""A heartbeat file the scheduler touches each tick, for `check --live`."""

from __future__ import annotations

import time
from pathlib import Path

HEARTBEAT_FILE = "scheduler.heartbeat"


def beat(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / HEARTBEAT_FILE).write_text(f"{time.time():.3f}\n")


def heartbeat_age(data_dir: Path) -> float | None:
    try:
        stamp = float((data_dir / HEARTBEAT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return max(0.0, time.time() - stamp)
