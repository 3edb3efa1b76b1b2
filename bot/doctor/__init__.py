"""`python -m bot check`: one line per check, what is wrong and what to do about it.

Every network check has a short timeout, so a dead server or a silent socket costs
seconds, never a hang. `check --live` is the liveness probe: settings, database,
schema and the scheduler's heartbeat only (no calls to Telegram or Instagram).
The checks live in this package by what they look at; `report` prints their lines.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.config import Settings
from bot.doctor.database import check_database
from bot.doctor.instagram import check_instagram
from bot.doctor.report import Report, passed
from bot.doctor.settings import check_settings, heartbeat_finding
from bot.doctor.telegram import check_telegram

EXIT_FAILED = 1


async def check(
    settings: Settings, *, live: bool = False, emit: Callable[[str], None] = print
) -> int:
    """Run every check, print one line each and a summary; 1 if anything failed."""
    report = Report(emit)
    if live:
        report.add(passed("settings", "valid"))
        await check_database(settings, report, live=True)
        report.add(heartbeat_finding(settings))
    else:
        check_settings(settings, report)
        if settings.bot_token is not None:
            await check_telegram(settings, report)
        found = await check_database(settings, report, live=False)
        await check_instagram(settings, report, found)
    emit(report.summary())
    return EXIT_FAILED if report.failures else 0
