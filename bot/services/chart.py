"""/stats' picture: presses per day over four weeks, stacked by person, one panel per action,
and below them a weekday × hour heat map of the average reach of the kept Story results
(of the posts per hour, while no results are kept)."""

from __future__ import annotations

import asyncio
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories import ChatSettingsRepository
from db.repositories.activity import ActivityRepository, DailyCount
from db.repositories.stats import HourCell
from db.retry import Idempotent, in_transaction
from db.vocabulary import HistoryStatus

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CHART_DAYS = 28
STATUS_TITLES = {
    HistoryStatus.POSTED: "Posted",
    HistoryStatus.SKIPPED: "Skipped",
    HistoryStatus.REJECTED: "Rejected",
}

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class HeatMap:
    """Weekday × hour cells (weekday 1 = Monday) and what their values are."""

    title: str
    cells: Sequence[HourCell]


def heat_map_of(reach: Sequence[HourCell], posts: Sequence[HourCell], days: int) -> HeatMap:
    """Average reach where Story results are kept, else the posts per hour."""
    if reach:
        return HeatMap(f"Average reach by weekday and hour, last {days} days", reach)
    return HeatMap(f"Posts by weekday and hour, last {days} days (no Story results yet)", posts)


def render_activity_png(
    counts: Sequence[DailyCount], last_day: date, heat: HeatMap | None = None
) -> bytes:
    """A PNG; blocking (matplotlib), so callers run it in a worker thread."""
    # The object-oriented API with the Agg canvas: no pyplot state, safe off the main thread.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    days = [last_day - timedelta(days=offset) for offset in range(CHART_DAYS - 1, -1, -1)]
    index = {day: position for position, day in enumerate(days)}
    people = sorted({count.person for count in counts})
    grid: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * CHART_DAYS)
    for count in counts:
        if count.day in index:
            grid[(count.status, count.person)][index[count.day]] += count.count

    figure = Figure(figsize=(10, 7 if heat is None else 11), dpi=100)
    FigureCanvasAgg(figure)
    rows = len(STATUS_TITLES) + (0 if heat is None else 1)
    heights = [1.0] * len(STATUS_TITLES) + ([] if heat is None else [2.2])
    layout = figure.add_gridspec(rows, 1, height_ratios=heights)
    first = figure.add_subplot(layout[0])
    axes = [first] + [figure.add_subplot(layout[row], sharex=first) for row in (1, 2)]
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
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in axes[:-1]:
        axis.tick_params(labelbottom=False)
    axes[-1].set_xticks(positions[::2], [day.strftime("%d %b") for day in days[::2]], rotation=45)
    figure.suptitle(f"Presses per day, last {CHART_DAYS} days")
    if people:
        handles = [Patch(color=colours[person], label=person) for person in people]
        figure.legend(handles=handles, loc="upper right", fontsize="small")
    if heat is not None:
        _draw_heat_map(figure, figure.add_subplot(layout[3]), heat)
    figure.tight_layout(rect=(0, 0, 0.88, 0.96))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _draw_heat_map(figure: Figure, axis: Axes, heat: HeatMap) -> None:
    # An hour with nothing in it stays blank (NaN), apart from an hour whose figure is low.
    grid = [[float("nan")] * 24 for _ in WEEKDAYS]
    for cell in heat.cells:
        grid[cell.weekday - 1][cell.hour] = cell.value
    image = axis.imshow(grid, aspect="auto", cmap="viridis", origin="upper")
    axis.set_yticks(range(len(WEEKDAYS)), WEEKDAYS)
    axis.set_xticks(range(0, 24, 2), [f"{hour:02d}" for hour in range(0, 24, 2)])
    axis.set_xlabel("hour of the day (chat's timezone)")
    axis.set_title(heat.title, fontsize="medium")
    figure.colorbar(image, ax=axis, fraction=0.04, pad=0.01)


async def render_activity_chart(
    counts: Sequence[DailyCount], last_day: date, heat: HeatMap | None = None
) -> bytes:
    """Render in a worker thread so the event loop keeps serving presses."""
    return await asyncio.to_thread(render_activity_png, counts, last_day, heat)


async def activity_chart(
    sessions: async_sessionmaker[AsyncSession],
    chat_id: int,
    now: datetime,
    heat: HeatMap | None = None,
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
    return await render_activity_chart(counts, now.astimezone(ZoneInfo(timezone)).date(), heat)
