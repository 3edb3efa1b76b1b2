"""Posting windows and slots: across midnight, on DST days, 1 and 50 posts, catch-up."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.services.slots import next_slot, owed_slot, window_at, window_opening_on


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_window_across_midnight() -> None:
    window = window_opening_on(date(2026, 6, 1), 22, 2, 4, ZoneInfo("UTC"))
    assert window.start == utc(2026, 6, 1, 22)
    assert window.end == utc(2026, 6, 2, 2)
    assert window.slots() == [
        utc(2026, 6, 1, 22),
        utc(2026, 6, 1, 23),
        utc(2026, 6, 2, 0),
        utc(2026, 6, 2, 1),
    ]
    # At 01:30 the window that opened yesterday is the current one.
    assert window_at(utc(2026, 6, 2, 1, 30), 22, 2, 4, "UTC") == window
    assert window_at(utc(2026, 6, 2, 2, 0), 22, 2, 4, "UTC") is None


def test_dst_spring_forward_day_has_a_shorter_window() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 2026-03-29: clocks jump 02:00 -> 03:00. Window 00:00-06:00 local is 5 real hours.
    window = window_opening_on(date(2026, 3, 29), 0, 6, 5, berlin)
    assert window.end - window.start == timedelta(hours=5)
    assert window.start == utc(2026, 3, 28, 23)
    assert window.end == utc(2026, 3, 29, 4)
    assert window.interval == timedelta(hours=1)


def test_dst_fall_back_day_has_a_longer_window() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 2026-10-25: 03:00 -> 02:00. Window 00:00-06:00 local is 7 real hours.
    window = window_opening_on(date(2026, 10, 25), 0, 6, 7, berlin)
    assert window.end - window.start == timedelta(hours=7)
    assert len(set(window.slots())) == 7


def test_a_start_hour_skipped_by_dst_still_opens() -> None:
    ny = ZoneInfo("America/New_York")
    # 2026-03-08 02:00 does not exist in New York; the window opens at 03:00 EDT.
    window = window_opening_on(date(2026, 3, 8), 2, 4, 1, ny)
    assert window.start == utc(2026, 3, 8, 7)
    assert window.end == utc(2026, 3, 8, 8)


def test_one_post_a_day() -> None:
    assert owed_slot(utc(2026, 6, 1, 8, 59), None, 9, 21, 1, "UTC") is None
    assert owed_slot(utc(2026, 6, 1, 9, 0), None, 9, 21, 1, "UTC") == utc(2026, 6, 1, 9)
    assert owed_slot(utc(2026, 6, 1, 20, 0), utc(2026, 6, 1, 9), 9, 21, 1, "UTC") is None
    assert next_slot(utc(2026, 6, 1, 20, 0), utc(2026, 6, 1, 9), 9, 21, 1, "UTC") == utc(
        2026, 6, 2, 9
    )


def test_fifty_posts_a_day() -> None:
    window = window_opening_on(date(2026, 6, 1), 0, 0, 50, ZoneInfo("UTC"))
    assert window.end - window.start == timedelta(hours=24)
    slots = window.slots()
    assert len(slots) == 50
    assert slots[1] - slots[0] == timedelta(minutes=28, seconds=48)


def test_catch_up_after_downtime_is_one_slot_per_tick() -> None:
    # Hourly slots from 09:00; down from 09:30 to 12:10 with only 09:00 filled.
    last = utc(2026, 6, 1, 9)
    now = utc(2026, 6, 1, 12, 10)
    sent = []
    for _ in range(6):  # six ticks, a minute apart
        slot = owed_slot(now, last, 9, 21, 12, "UTC")
        if slot is not None:
            sent.append(slot)
            last = slot
        now += timedelta(minutes=1)
    assert sent == [utc(2026, 6, 1, 10), utc(2026, 6, 1, 11), utc(2026, 6, 1, 12)]


def test_slots_of_an_earlier_window_are_forgiven() -> None:
    # Last filled yesterday morning; today at 09:30 only today's 09:00 slot is owed.
    assert owed_slot(utc(2026, 6, 2, 9, 30), utc(2026, 6, 1, 9), 9, 21, 12, "UTC") == utc(
        2026, 6, 2, 9
    )
    assert owed_slot(utc(2026, 6, 2, 9, 31), utc(2026, 6, 2, 9), 9, 21, 12, "UTC") is None


def test_a_chat_that_never_posted_starts_at_the_current_slot() -> None:
    assert owed_slot(utc(2026, 6, 1, 12, 10), None, 9, 21, 12, "UTC") == utc(2026, 6, 1, 12)
