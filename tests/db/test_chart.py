"""/stats' chart: a real PNG of four weeks, rendered in a worker thread."""

from __future__ import annotations

import asyncio
import struct
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from aiogram.methods import SendMessage, SendPhoto
from aiogram.types import BufferedInputFile
from sqlalchemy import text

from bot.services import chart
from db.repositories.activity import DailyCount
from tests.helpers.fake_telegram_session import command_update
from tests.helpers.support import ALICE, TEAM_CHAT, TestApp, seed_media

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def _presses(app: TestApp) -> None:
    """Alice and Bob acted over the last weeks; one entry is older than the chart."""
    media = await seed_media(app.sessions, count=6)
    now = datetime.now(UTC)
    rows = [
        ("Alice", 11, "posted", 0),
        ("Alice", 11, "skipped", 2),
        ("Bob", 12, "posted", 2),
        ("Bob", 12, "rejected", 9),
        ("Alice", 11, "posted", 20),
        ("Bob", 12, "posted", 40),
    ]
    async with app.sessions() as session, session.begin():
        for (name, telegram_id, status, days_ago), media_id in zip(rows, media, strict=True):
            user_id = (
                await session.execute(
                    text(
                        "INSERT INTO users (telegram_user_id, first_name) VALUES (:t, :n)"
                        " ON CONFLICT (telegram_user_id) DO UPDATE SET first_name = :n"
                        " RETURNING id"
                    ),
                    {"t": telegram_id, "n": name},
                )
            ).scalar_one()
            await session.execute(
                text(
                    "INSERT INTO posting_history (media_item_id, chat_id, status, success,"
                    " acted_by_user_id, acted_by_name, acted_at)"
                    " VALUES (:m, :c, :s, true, :u, :n, :t)"
                ),
                {
                    "m": media_id,
                    "c": TEAM_CHAT,
                    "s": status,
                    "u": user_id,
                    "n": name,
                    "t": now - timedelta(days=days_ago),
                },
            )


async def test_stats_sends_the_text_and_a_png_rendered_off_the_loop(
    app: TestApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _presses(app)
    rendered_on: list[threading.Thread] = []
    seen: list[list[DailyCount]] = []
    real = chart.render_activity_png

    heats: list[chart.HeatMap | None] = []

    def spy(counts: list[DailyCount], last_day: date, heat: chart.HeatMap | None = None) -> bytes:
        rendered_on.append(threading.current_thread())
        seen.append(list(counts))
        heats.append(heat)
        return real(counts, last_day, heat)

    monkeypatch.setattr(chart, "render_activity_png", spy)
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.005)
            ticks += 1

    beating = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.02)
    before = ticks
    await app.feed(command_update("/stats", TEAM_CHAT, ALICE.user))
    during = ticks - before
    stop.set()
    await beating

    [summary] = app.telegram.of(SendMessage)
    assert "posted / skipped / rejected" in summary.text
    [photo] = app.telegram.of(SendPhoto)
    assert photo.chat_id == TEAM_CHAT
    assert isinstance(photo.photo, BufferedInputFile)
    data: bytes = photo.photo.data
    width, height = png_size(data)
    assert (width, height) == (1000, 1100)  # the four weeks, and the heat map below
    [heat] = heats
    assert heat is not None and heat.title.startswith("Posts by weekday and hour")
    assert 10_000 < len(data) < 1_000_000
    assert rendered_on and rendered_on[0] is not threading.main_thread()
    assert during > 0  # the loop kept running while the chart rendered
    # Four weeks only: the 40-day-old press is not drawn.
    counted: dict[tuple[str, str], int] = {}
    for count in seen[0]:
        key = (count.person, count.status)
        counted[key] = counted.get(key, 0) + count.count
    assert counted == {
        ("Alice", "posted"): 2,
        ("Alice", "skipped"): 1,
        ("Bob", "posted"): 1,
        ("Bob", "rejected"): 1,
    }


async def test_no_presses_no_chart(app: TestApp) -> None:
    await app.feed(command_update("/stats", TEAM_CHAT, ALICE.user))
    assert app.telegram.of(SendPhoto) == []


def test_an_empty_day_range_still_renders() -> None:
    data = chart.render_activity_png([], date(2026, 3, 1))
    assert png_size(data) == (1000, 700)
