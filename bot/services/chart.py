"""/stats' picture: presses per day over four weeks, stacked by person, one panel per action."""

from __future__ import annotations

import asyncio
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories import ChatSettingsRepository
from db.repositories.activity import ActivityRepository, DailyCount
from db.retry import Idempotent, in_transaction
from db.vocabulary import HistoryStatus

CHART_DAYS = 28
STATUS_TITLES = {
    HistoryStatus.POSTED: "Posted",
    HistoryStatus.SKIPPED: "Skipped",
    HistoryStatus.REJECTED: "Rejected",
}


def render_activity_png(counts: Sequence[DailyCount], last_day: date) -> bytes:
    """A PNG; blocking (matplotlib), so callers run it in a worker thread."""
    # The object-oriented API with the Agg canvas: no pyplot state, safe off the main thread.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    days = [last_day - timedelta(days=offset) for offset in range(CHART_DAYS - 1, -1, -1)]
    index = {day: position for position, day in enumerate(days)}
    people = sorted({count.person for count in counts})
    grid: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * CHART_DAYS)
    for count in counts:
        if count.day in index:
            grid[(count.status, count.person)][index[count.day]] += count.count

    figure = Figure(figsize=(10, 7), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(STATUS_TITLES), 1, sharex=True)
    colours = {person: f"C{position % 10}" for position, person in enumerate(people)}
    positions = list(range(CHART_DAYS))
    for axis, (status, title) in zip(axes, STATUS_TITLES.items(), strict=True):
        bottom = [0] * CHART_DAYS
        for person in people:
            values = grid.get((status, person))
            if values is None:
                continue
            axis.bar(
                positions, values, bottom=bottom, color=colours[person], label=person, width=0.8
            )
            bottom = [low + value for low, value in zip(bottom, values, strict=True)]
        axis.set_ylabel(title)
        axis.grid(axis="y", alpha=0.3)
        axis.set_ylim(bottom=0)
        axis.yaxis.get_major_locator().set_params(integer=True)
    axes[-1].set_xticks(positions[::2], [day.strftime("%d %b") for day in days[::2]], rotation=45)
    figure.suptitle(f"Presses per day, last {CHART_DAYS} days")
    if people:
        handles = [Patch(color=colours[person], label=person) for person in people]
        figure.legend(handles=handles, loc="upper right", fontsize="small")
    figure.tight_layout(rect=(0, 0, 0.88, 0.96))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


async def render_activity_chart(counts: Sequence[DailyCount], last_day: date) -> bytes:
    """Render in a worker thread so the event loop keeps serving presses."""
    return await asyncio.to_thread(render_activity_png, counts, last_day)


async def activity_chart(
    sessions: async_sessionmaker[AsyncSession], chat_id: int, now: datetime
) -> bytes | None:
    """The chat's last four weeks as a PNG, in its timezone; None when nobody pressed."""

    async def read(session: AsyncSession) -> tuple[list[DailyCount], str]:
        chat = await ChatSettingsRepository(session).get(chat_id)
        timezone = chat.timezone if chat is not None else "UTC"
        since = now - timedelta(days=CHART_DAYS)
        return await ActivityRepository(session).daily_counts(chat_id, since, timezone), timezone

    counts, timezone = await in_transaction(
        sessions, read, repeat=Idempotent("it only reads"), operation="stats.chart"
    )
    if not counts:
        return None
    return await render_activity_chart(counts, now.astimezone(ZoneInfo(timezone)).date())
