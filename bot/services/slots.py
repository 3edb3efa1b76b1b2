"""Posting-window arithmetic: pure functions of the chat's settings and a UTC instant."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
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

    def begun(self, moment: datetime) -> list[datetime]:
        return [slot for slot in self.slots() if slot <= moment]


class ScheduleSettings(Protocol):
    """The chat settings a schedule is made of (a ChatSettings row has them)."""

    @property
    def posting_hours_start(self) -> int: ...
    @property
    def posting_hours_end(self) -> int: ...
    @property
    def posts_per_day(self) -> int: ...
    @property
    def timezone(self) -> str: ...


def _local(day: date, hour: int, zone: ZoneInfo) -> datetime:
    # A wall-clock hour skipped by a DST jump resolves forward (fold=0 then normalise).
    aware = datetime.combine(day, time(hour)).replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone)


@dataclass(frozen=True, slots=True)
class PostingSchedule:
    """A daily window [start_hour, end_hour) in `timezone`, crossing midnight when end <= start."""

    start_hour: int
    end_hour: int
    posts: int
    timezone: str

    @classmethod
    def of(cls, chat: ScheduleSettings) -> PostingSchedule:
        return cls(
            chat.posting_hours_start, chat.posting_hours_end, chat.posts_per_day, chat.timezone
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def window_opening_on(self, day: date) -> Window:
        end_day = day if self.end_hour > self.start_hour else day + timedelta(days=1)
        start = _local(day, self.start_hour, self.zone).astimezone(UTC)
        end = _local(end_day, self.end_hour, self.zone).astimezone(UTC)
        return Window(start=start, end=end, posts=self.posts)

    def window_at(self, moment: datetime) -> Window | None:
        """The window containing `moment` (UTC), or None outside every window."""
        local_day = moment.astimezone(self.zone).date()
        for day in (local_day, local_day - timedelta(days=1)):
            window = self.window_opening_on(day)
            if window.contains(moment):
                return window
        return None

    def next_window(self, moment: datetime) -> Window:
        """The first window that opens after `moment`."""
        local_day = moment.astimezone(self.zone).date()
        for offset in range(3):
            window = self.window_opening_on(local_day + timedelta(days=offset))
            if window.start > moment:
                return window
        raise AssertionError("a window opens every day")

    def owed_slot(self, now: datetime, last_filled: datetime | None) -> datetime | None:
        """The slot to fill now, or None.

        Slots of the current window that passed unfilled (downtime) are owed one
        at a time, one per tick; slots of earlier windows are forgiven, so there
        is never a burst. A chat that never posted starts at the current slot.
        """
        begun = _begun_slots(self, now)
        if not begun:
            return None
        if last_filled is None:
            return begun[-1]
        return next((slot for slot in begun if slot > last_filled), None)

    def next_slot(self, now: datetime, last_filled: datetime | None) -> datetime:
        """When the scheduler will next send (for /status)."""
        if self.owed_slot(now, last_filled) is not None:
            return now
        window = self.window_at(now)
        if window is not None:
            upcoming = [slot for slot in window.slots() if slot > now]
            if upcoming:
                return upcoming[0]
        return self.next_window(now).start

    def slot_filled_by_manual_send(self, now: datetime) -> datetime | None:
        """A /next inside the window fills the latest slot that has begun."""
        window = self.window_at(now)
        return window.begun(now)[-1] if window is not None else None


@functools.lru_cache(maxsize=4096)
def _begun_slots(schedule: PostingSchedule, now: datetime) -> tuple[datetime, ...]:
    """The slots of the window at `now` that have begun (none outside a window).

    Cached: a tick asks this for every chat at one `now`, and most chats share a
    schedule, so a thousand chats cost a handful of window computations.
    """
    window = schedule.window_at(now)
    return () if window is None else tuple(window.begun(now))
