"""The doctor's local checks: the settings, and the scheduler's heartbeat for `check --live`."""

from __future__ import annotations

from bot.config import ConfigError, Settings
from bot.doctor.report import Finding, Report, failed, passed
from bot.services.heartbeat import heartbeat_age


def check_settings(settings: Settings, report: Report) -> None:
    try:
        settings.require_for_run()
    except ConfigError as error:
        report.add(failed("settings", str(error), "set them in the environment or in .env"))
    else:
        report.add(passed("settings", "valid"))


def heartbeat_finding(settings: Settings) -> Finding:
    age = heartbeat_age(settings.data_dir)
    if age is None or age > settings.heartbeat_max_age_seconds:
        return failed(
            "scheduler",
            "heartbeat is " + ("missing" if age is None else f"{age:.0f}s old"),
            "the bot is not running or its scheduler is stuck: restart it and read its log",
        )
    return passed("scheduler", f"ticked {age:.0f}s ago")
