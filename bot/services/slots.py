"""Posting-window arithmetic: pure functions of the chat's settings and a UTC instant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Window:
    """One posting window in UTC, split into equal slots of real (elapsed) time."""

    start: datetime
    end: datetime
    posts: int

    @property
    def interval(self) -> timedelta:
        return (self.end - self.start) / self.posts

    def slots(self) -> list[datetime]:
        return [self.start + self.interval * index for index in range(self.posts)]

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def _local(day: date, hour: int, zone: ZoneInfo) -> datetime:
    # A wall-clock hour skipped by a DST jump resolves forward (fold=0 then normalise).
    naive = datetime.combine(day, time(hour))
    aware = naive.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone)


def window_opening_on(
    day: date, start_hour: int, end_hour: int, posts: int, zone: ZoneInfo
) -> Window:
    """The window that opens on local `day`; it ends the next day when end <= start."""
    end_day = day if end_hour > start_hour else day + timedelta(days=1)
    start = _local(day, start_hour, zone).astimezone(UTC)
    end = _local(end_day, end_hour, zone).astimezone(UTC)
    return Window(start=start, end=end, posts=posts)


def window_at(
    moment: datetime, start_hour: int, end_hour: int, posts: int, timezone: str
) -> Window | None:
    """The window containing `moment` (UTC), or None outside every window."""
    zone = ZoneInfo(timezone)
    local_day = moment.astimezone(zone).date()
    for day in (local_day, local_day - timedelta(days=1)):
        window = window_opening_on(day, start_hour, end_hour, posts, zone)
        if window.contains(moment):
            return window
    return None


def next_window(
    moment: datetime, start_hour: int, end_hour: int, posts: int, timezone: str
) -> Window:
    """The first window that opens after `moment`."""
    zone = ZoneInfo(timezone)
    local_day = moment.astimezone(zone).date()
    for offset in range(0, 3):
        window = window_opening_on(
            local_day + timedelta(days=offset), start_hour, end_hour, posts, zone
        )
        if window.start > moment:
            return window
    raise AssertionError("a window opens every day")


def owed_slot(
    now: datetime,
    last_filled: datetime | None,
    start_hour: int,
    end_hour: int,
    posts: int,
    timezone: str,
) -> datetime | None:
    """The slot to fill now, or None.

    Slots of the current window that passed unfilled (downtime) are owed one at a
    time, one per tick; slots of earlier windows are forgiven, so there is never
    a burst. A chat that never posted starts at the current slot.
    """
    window = window_at(now, start_hour, end_hour, posts, timezone)
    if window is None:
        return None
    begun = [slot for slot in window.slots() if slot <= now]
    if last_filled is None:
        # A chat that never posted starts with the current slot, not a backlog.
        return begun[-1]
    return next((slot for slot in begun if slot > last_filled), None)


def next_slot(
    now: datetime,
    last_filled: datetime | None,
    start_hour: int,
    end_hour: int,
    posts: int,
    timezone: str,
) -> datetime:
    """When the scheduler will next send (for /status)."""
    owed = owed_slot(now, last_filled, start_hour, end_hour, posts, timezone)
    if owed is not None:
        return now
    window = window_at(now, start_hour, end_hour, posts, timezone)
    if window is not None:
        for slot in window.slots():
            if slot > now:
                return slot
    return next_window(now, start_hour, end_hour, posts, timezone).start


def slot_filled_by_manual_send(
    now: datetime, start_hour: int, end_hour: int, posts: int, timezone: str
) -> datetime | None:
    """A /next inside the window fills the latest slot that has begun."""
    window = window_at(now, start_hour, end_hour, posts, timezone)
    if window is None:
        return None
    begun = [slot for slot in window.slots() if slot <= now]
    return begun[-1] if begun else None
