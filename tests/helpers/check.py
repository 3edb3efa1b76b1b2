"""`python -m bot check` in the test's own event loop, and reading the lines it prints."""

from __future__ import annotations

import asyncio

from bot import doctor
from bot.config import Settings


async def run_check(settings: Settings, *, live: bool = False) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = await asyncio.wait_for(doctor.check(settings, live=live, emit=lines.append), 60)
    return code, lines


def line_of(lines: list[str], subject: str) -> str:
    [line] = [line for line in lines if line.split(maxsplit=1)[1].startswith(f"{subject}:")]
    return line
