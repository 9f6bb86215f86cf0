"""Small PNG charts of the gold answers, for Dagster's markdown metadata (readable at a glance in the UI).

matplotlib's object API (Figure, no pyplot) draws them: no display, no global state, safe in any run worker.
Each chart is a few tens of KB, embedded as a data URI, which Dagster's markdown renderer shows inline.
A gold run draws three charts a year, so each figure's margins are measured from its labels' widths (as the Agg
renderer lays them out) instead of by a layout engine, which draws every text again to fit it: half
the time of a chart.
matplotlib is imported by the first chart drawn, not with the code location: every run loads the code location
(ingest and crawl runs too), and matplotlib costs each about a second and 40 MiB (benchmarks/bench_history.py).
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

NOT_GIVEN = "(not given)"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SOURCE_COLORS = {"legacy": "#1f77b4", "new_system": "#d62728"}
DPI = 80
TICK_POINTS = 10  # matplotlib's default text size, of tick labels unless set
BAR_LABEL_POINTS = 8
# Titles placed at the top of the axes: left to itself, matplotlib measures the axes' tick labels on every draw to
# lift a title clear of any drawn above (none are).
TITLE_Y = 1.0


def cases_per_month_png(cases: pa.Table) -> bytes:
    """Lines of cases per month by source system, with the first month of the new CRM marked."""
    from matplotlib.dates import date2num

    series: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for row in cases.to_pylist():
        series[row["source_system"]].append((row["month"], row["cases"]))
    most = max((count for points in series.values() for _, count in points), default=0)
    # The widest y tick label has at most the digits of the largest count, one more for the axis's headroom.
    figure, axes = _figure(9, 3.2, left=_text_inches([str(most * 10)], TICK_POINTS) + 0.45)
    for source, points in sorted(series.items()):
        for run_number, run in enumerate(consecutive_months(sorted(points))):
            months, counts = zip(*run, strict=True)
            label = source if run_number == 0 else None  # years without data break the line, not the legend
            axes.plot(months, counts, marker=".", label=label, color=SOURCE_COLORS.get(source))
    if series.get("new_system"):
        switch = min(month for month, _ in series["new_system"])
        axes.axvline(date2num(switch), color="grey", linestyle="--", linewidth=1)
        axes.annotate(
            f"new CRM from {switch:%b %Y}", (date2num(switch), 0.95), xycoords=("data", "axes fraction"), ha="right"
        )
    axes.set_title("Cases opened per month, by source system", y=TITLE_Y)
    axes.set_ylabel("cases")
    axes.legend(loc="upper left")
    return _png(figure)


def median_hours_by_neighborhood_png(neighborhoods: pa.Table, year: int) -> bytes:
    """Horizontal bars of the median hours to close in one year, slowest neighborhood on top."""
    rows = sorted(
        (row for row in neighborhoods.to_pylist() if row["year"] == str(year) and row["median_hours_to_close"]),
        key=lambda row: row["median_hours_to_close"],
    )
    return _bars(
        [row["neighborhood"] or NOT_GIVEN for row in rows],
        [row["median_hours_to_close"] for row in rows],
        f"Median hours to close, by neighborhood, {year}",
        "hours (median)",
    )


def on_time_share_by_department_png(departments: pa.Table, year: int) -> bytes:
    """Horizontal bars of the share of cases closed within their target, per department in one year."""
    rows = sorted(
        (row for row in departments.to_pylist() if row["year"] == str(year)), key=lambda row: row["on_time_share"]
    )
    return _bars(
        [row["department"] or NOT_GIVEN for row in rows],
        [row["on_time_share"] for row in rows],
        f"On-time share, by department, {year}",
        "on time",
        percent=True,
    )


def intake_heatmap_png(intake: pa.Table, year: int) -> bytes:
    """Cases opened by weekday and local hour: when the city is asked."""
    grid = [[0] * 24 for _ in WEEKDAYS]
    for row in intake.to_pylist():
        if row["year"] == str(year):
            grid[row["weekday"] - 1][row["hour"]] += row["cases_opened"]
    most = max(max(hours) for hours in grid)
    # The colorbar takes its room from the axes; its tick labels and title need the right margin.
    right = _text_inches([str(most * 10)], TICK_POINTS) + 0.45
    figure, axes = _figure(9, 3, left=_text_inches(WEEKDAYS, TICK_POINTS) + 0.15, right=right)
    image = axes.imshow(grid, aspect="auto", cmap="viridis")
    axes.set_yticks(range(len(WEEKDAYS)), WEEKDAYS)
    axes.set_xticks(range(0, 24, 2))
    axes.set_xlabel("hour of day (Boston time)")
    axes.set_title(f"Cases opened by weekday and hour, {year}", y=TITLE_Y)
    figure.colorbar(image, ax=axes, label="cases")
    return _png(figure)


def consecutive_months(points: list[tuple[date, int]]) -> list[list[tuple[date, int]]]:
    """Sorted (month, value) points cut where months are missing, so a gap is drawn as a gap."""
    runs: list[list[tuple[date, int]]] = []
    for month, value in points:
        previous = runs[-1][-1][0] if runs else None
        if previous is not None and (month.year - previous.year) * 12 + month.month - previous.month == 1:
            runs[-1].append((month, value))
        else:
            runs.append([(month, value)])
    return runs


def markdown(images: dict[str, bytes]) -> str:
    """Titled PNGs as one markdown document with data URIs, the form Dagster renders inline."""
    return "\n\n".join(
        f"**{title}**\n\n![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"
        for title, png in images.items()
    )


def _bars(labels: list[str], values: list[float], title: str, unit: str, percent: bool = False) -> bytes:
    from matplotlib.ticker import PercentFormatter

    left = _text_inches(labels or [""], BAR_LABEL_POINTS) + 0.15
    figure, axes = _figure(7, 0.9 + 0.22 * max(len(labels), 1), left=left, right=0.3)
    axes.barh(labels, values, color="#4c72b0")
    if percent:
        axes.xaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_xlim(0, 1)
    if not labels:
        axes.text(0.5, 0.5, "no data for this year", ha="center", va="center", transform=axes.transAxes)
    axes.set_title(title, y=TITLE_Y)
    axes.set_xlabel(unit)
    axes.tick_params(axis="y", labelsize=8)
    return _png(figure)


def _figure(
    width: float, height: float, *, left: float, right: float = 0.2, top: float = 0.35, bottom: float = 0.5
) -> tuple[Figure, Axes]:
    """A figure of one axes with margins in inches: room for the tick labels and axis label left and below, the
    title above."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    figure.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height)
    return figure, figure.subplots()


def _text_inches(texts: Iterable[str], points: float) -> float:
    """The width of the widest of `texts` at `points`, as the Agg renderer lays it out (no drawing)."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer, font = RendererAgg(1, 1, DPI), FontProperties(size=points)
    widths = [renderer.get_text_width_height_descent(text, font, ismath=False)[0] for text in texts]
    return max(widths, default=0.0) / DPI


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
