"""Posting windows and slots: across midnight, on DST days, 1 and 50 posts, catch-up."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.services.slots import PostingSchedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_window_across_midnight() -> None:
    schedule = PostingSchedule(22, 2, 4, "UTC")
    window = schedule.window_opening_on(date(2026, 6, 1))
    assert window.start == utc(2026, 6, 1, 22)
    assert window.end == utc(2026, 6, 2, 2)
    assert window.slots() == [
        utc(2026, 6, 1, 22),
        utc(2026, 6, 1, 23),
        utc(2026, 6, 2, 0),
        utc(2026, 6, 2, 1),
    ]
    # At 01:30 the window that opened yesterday is the current one.
    assert schedule.window_at(utc(2026, 6, 2, 1, 30)) == window
    assert schedule.window_at(utc(2026, 6, 2, 2, 0)) is None


def test_dst_spring_forward_day_has_a_shorter_window() -> None:
    # 2026-03-29: Berlin jumps 02:00 -> 03:00. Window 00:00-06:00 local is 5 real hours.
    window = PostingSchedule(0, 6, 5, "Europe/Berlin").window_opening_on(date(2026, 3, 29))
    assert window.end - window.start == timedelta(hours=5)
    assert window.start == utc(2026, 3, 28, 23)
    assert window.end == utc(2026, 3, 29, 4)
    assert window.interval == timedelta(hours=1)


def test_dst_fall_back_day_has_a_longer_window() -> None:
    # 2026-10-25: 03:00 -> 02:00. Window 00:00-06:00 local is 7 real hours.
    window = PostingSchedule(0, 6, 7, "Europe/Berlin").window_opening_on(date(2026, 10, 25))
    assert window.end - window.start == timedelta(hours=7)
    assert len(set(window.slots())) == 7


def test_a_start_hour_skipped_by_dst_still_opens() -> None:
    # 2026-03-08 02:00 does not exist in New York; the window opens at 03:00 EDT.
    window = PostingSchedule(2, 4, 1, "America/New_York").window_opening_on(date(2026, 3, 8))
    assert window.start == utc(2026, 3, 8, 7)
    assert window.end == utc(2026, 3, 8, 8)


def test_one_post_a_day() -> None:
    schedule = PostingSchedule(9, 21, 1, "UTC")
    assert schedule.owed_slot(utc(2026, 6, 1, 8, 59), None) is None
    assert schedule.owed_slot(utc(2026, 6, 1, 9, 0), None) == utc(2026, 6, 1, 9)
    assert schedule.owed_slot(utc(2026, 6, 1, 20, 0), utc(2026, 6, 1, 9)) is None
    assert schedule.next_slot(utc(2026, 6, 1, 20, 0), utc(2026, 6, 1, 9)) == utc(2026, 6, 2, 9)


def test_fifty_posts_a_day() -> None:
    window = PostingSchedule(0, 0, 50, "UTC").window_opening_on(date(2026, 6, 1))
    assert window.end - window.start == timedelta(hours=24)
    slots = window.slots()
    assert len(slots) == 50
    assert slots[1] - slots[0] == timedelta(minutes=28, seconds=48)


def test_catch_up_after_downtime_is_one_slot_per_tick() -> None:
    # Hourly slots from 09:00; down from 09:30 to 12:10 with only 09:00 filled.
    schedule = PostingSchedule(9, 21, 12, "UTC")
    last = utc(2026, 6, 1, 9)
    now = utc(2026, 6, 1, 12, 10)
    sent = []
    for _ in range(6):  # six ticks, a minute apart
        slot = schedule.owed_slot(now, last)
        if slot is not None:
            sent.append(slot)
            last = slot
        now += timedelta(minutes=1)
    assert sent == [utc(2026, 6, 1, 10), utc(2026, 6, 1, 11), utc(2026, 6, 1, 12)]


def test_slots_of_an_earlier_window_are_forgiven() -> None:
    # Last filled yesterday morning; today at 09:30 only today's 09:00 slot is owed.
    schedule = PostingSchedule(9, 21, 12, "UTC")
    assert schedule.owed_slot(utc(2026, 6, 2, 9, 30), utc(2026, 6, 1, 9)) == utc(2026, 6, 2, 9)
    assert schedule.owed_slot(utc(2026, 6, 2, 9, 31), utc(2026, 6, 2, 9)) is None


def test_a_chat_that_never_posted_starts_at_the_current_slot() -> None:
    schedule = PostingSchedule(9, 21, 12, "UTC")
    assert schedule.owed_slot(utc(2026, 6, 1, 12, 10), None) == utc(2026, 6, 1, 12)


def test_a_manual_send_fills_the_slot_that_has_begun() -> None:
    schedule = PostingSchedule(9, 21, 12, "UTC")
    assert schedule.slot_filled_by_manual_send(utc(2026, 6, 1, 12, 40)) == utc(2026, 6, 1, 12)
    assert schedule.slot_filled_by_manual_send(utc(2026, 6, 1, 22, 0)) is None
