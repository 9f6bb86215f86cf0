"""Small PNG charts of the gold answers, for Dagster's markdown metadata (readable at a glance in the UI).

matplotlib's object API (Figure, no pyplot) draws them: no display, no global state, safe in any run worker.
Each chart is a few tens of KB, embedded as a data URI, which Dagster's markdown renderer shows inline.
Each figure's margins are measured from its labels' widths (as the Agg renderer lays them out) instead of by a
layout engine, which draws every text again to fit it: half the time of a chart.
matplotlib is imported by the first chart drawn, not with the code location: every run loads the code location
(ingest and crawl runs too), and matplotlib costs each about a second and 40 MiB (benchmarks/bench_history.py).
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


def median_hours_by_neighborhood_png(neighborhoods: pa.Table) -> bytes:
    """Neighborhoods by year, shaded by the median hours to close: where and since when cases wait."""
    return _heatmap(
        by_label_and_year(neighborhoods, "neighborhood", "median_hours_to_close"),
        "Median hours to close, by neighborhood and year",
        "hours (median)",
        cmap="viridis",
    )


def on_time_share_by_department_png(departments: pa.Table) -> bytes:
    """Departments by year, shaded by the share of cases closed within their target."""
    return _heatmap(
        by_label_and_year(departments, "department", "on_time_share"),
        "On-time share, by department and year",
        "on time",
        cmap="RdYlGn",
        percent=True,
    )


def intake_heatmap_png(intake: pa.Table, year: int) -> bytes:
    """Cases opened by weekday and local hour in one year: when the city is asked."""
    grid = [[0] * 24 for _ in WEEKDAYS]
    for row in intake.to_pylist():
        if row["year"] == str(year):
            grid[row["weekday"] - 1][row["hour"]] += row["cases_opened"]
    hours = Grid(rows=WEEKDAYS, columns=[str(hour) for hour in range(24)], values=grid)
    return _heatmap(hours, f"Cases opened by weekday and hour, {year}", "cases", xlabel="hour of day (Boston time)")


@dataclass(frozen=True)
class Grid:
    """A heatmap's cells: values[row][column], None where a row has no value in that column."""

    rows: Sequence[str]
    columns: Sequence[str]
    values: Sequence[Sequence[float | None]]


def by_label_and_year(answers: pa.Table, label: str, value: str) -> Grid:
    """One row per `label` (alphabetical, the unnamed last), one column per year of `answers`."""
    cells: dict[tuple[str, str], float | None] = {}
    for row in answers.to_pylist():
        cell = (row[label] or NOT_GIVEN, row["year"])
        if cell in cells:
            raise ValueError(f"{label} {cell[0]!r} has two {value} values in {cell[1]}: a chart shows one")
        cells[cell] = row[value]
    rows = sorted({name for name, _ in cells}, key=lambda name: (name == NOT_GIVEN, name))
    years = sorted({year for _, year in cells})
    return Grid(rows=rows, columns=years, values=[[cells.get((name, year)) for year in years] for name in rows])


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


def _heatmap(
    grid: Grid, title: str, unit: str, *, cmap: str = "viridis", xlabel: str = "", percent: bool = False
) -> bytes:
    """Rows by columns shaded by value, with a colour bar; an empty cell (no value) is drawn light grey."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.ticker import PercentFormatter

    values = np.ma.masked_invalid(np.array(grid.values, dtype=float).reshape(len(grid.rows), len(grid.columns)))
    most = float(values.max()) if values.count() else 0.0
    # The colour bar takes its room from the axes; its tick labels and label need the right margin.
    right = _text_inches(["100%" if percent else f"{most:.1f}"], TICK_POINTS) + 0.45
    left = _text_inches(grid.rows or [""], BAR_LABEL_POINTS) + 0.15
    figure, axes = _figure(9, 0.9 + 0.22 * max(len(grid.rows), 4), left=left, right=right)
    axes.set_title(title, y=TITLE_Y)
    axes.set_xlabel(xlabel)
    if not values.count():
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
        return _png(figure)
    image = axes.imshow(
        values,
        aspect="auto",
        cmap=colormaps[cmap].with_extremes(bad="#e8e8e8"),
        vmin=0 if percent else None,
        vmax=1 if percent else None,
        interpolation="nearest",
    )
    axes.set_yticks(range(len(grid.rows)), grid.rows)
    axes.set_xticks(range(len(grid.columns)), grid.columns)
    axes.tick_params(labelsize=BAR_LABEL_POINTS)
    figure.colorbar(image, ax=axes, label=unit, format=PercentFormatter(1.0) if percent else None)
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
