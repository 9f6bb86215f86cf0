"""`boston-lake report`: one HTML file a person opens in a browser, with no network, to see the lake's answers.

plotly draws the charts: its figures are interactive out of the box (hover values, zoom, legend toggles) and
it ships plotly.js inside the Python package, so the file inlines the library once and needs nothing else.
The numbers come from the SQL in `answers`, through the same engine as `boston-lake query`.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import plotly.graph_objects as go
import pyarrow as pa
from plotly.offline import get_plotlyjs

from boston_lake.lake.answers import questions
from boston_lake.lake.answers.charts import NOT_GIVEN, SOURCE_COLORS, WEEKDAYS, consecutive_months
from boston_lake.lake.answers.questions import Query, TableFreshness
from boston_lake.lake.clock import utc_now
from boston_lake.lake.targets import LakeTarget

PLOT_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass(frozen=True)
class Chart:
    """A figure and, when it has one trace per year, the year of each trace (the year filter shows one)."""

    element_id: str
    figure: go.Figure
    trace_years: tuple[str, ...] = ()


def build_charts(query: Query) -> list[Chart]:
    return [
        _cases_per_month(questions.cases_per_month(query)),
        _median_hours_by_neighborhood(questions.median_hours_by_neighborhood(query).to_pylist()),
        _on_time_share_by_department(questions.on_time_share_by_department(query).to_pylist()),
        _intake(questions.intake_by_weekday_and_hour(query).to_pylist()),
        _open_cases_map(questions.open_cases_grid(query).to_pylist()),
    ]


def render_report(charts: list[Chart], freshness: list[TableFreshness], newest_case: datetime | None) -> str:
    years = sorted({year for chart in charts for year in chart.trace_years}, reverse=True)
    figures = "\n".join(
        f'<section data-trace-years="{html.escape(json.dumps(chart.trace_years))}">'
        + chart.figure.to_html(full_html=False, include_plotlyjs=False, div_id=chart.element_id, config=PLOT_CONFIG)
        + "</section>"
        for chart in charts
    )
    options = "".join(f'<option value="{html.escape(year)}">{html.escape(year)}</option>' for year in years)
    newest = f"{newest_case:%Y-%m-%d %H:%M} UTC" if newest_case else "no cases"
    generated = f"{utc_now():%Y-%m-%d %H:%M} UTC"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Boston 311 at a glance</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }}
 table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
 td, th {{ border-bottom: 1px solid #ddd; padding: 0.25em 0.8em; text-align: left; }}
 section {{ margin-bottom: 1.5em; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<h1>Boston 311 service requests at a glance</h1>
<p>Newest case opened: <strong id="newest-case">{html.escape(newest)}</strong>. Report written {generated}.</p>
{_freshness_table(freshness)}
<p><label for="year-filter">Year shown in the per-year charts: </label><select id="year-filter">{options}</select></p>
{figures}
<script type="text/javascript">
function showYear(year) {{
  document.querySelectorAll("section[data-trace-years]").forEach(function (section) {{
    var years = JSON.parse(section.dataset.traceYears);
    if (years.length === 0) return;
    var plot = section.querySelector(".plotly-graph-div");
    Plotly.restyle(plot, {{visible: years.map(function (y) {{ return y === year; }})}});
  }});
}}
var filter = document.getElementById("year-filter");
filter.addEventListener("change", function () {{ showYear(filter.value); }});
if (filter.value) showYear(filter.value);
</script>
</body>
</html>
"""


def write_report(path: Path, target: LakeTarget) -> Path:
    """Write the report of a target's lake to `path` (parents created); returns the absolute path."""
    freshness = sorted(
        questions.table_freshness(target.catalog(), target.lake_zone(), target.database)
        + questions.iceberg_freshness(target.iceberg_reader()),
        key=lambda entry: entry.table,
    )
    document = render_report(build_charts(target.query), freshness, questions.newest_case(target.query))
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


def _freshness_table(freshness: list[TableFreshness]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(entry.table)}</td><td>{entry.partitions}</td><td>{entry.records:,}</td>"
        f"<td>{entry.last_refresh:%Y-%m-%d %H:%M} UTC</td></tr>"
        if entry.last_refresh
        else f"<tr><td>{html.escape(entry.table)}</td><td>{entry.partitions}</td><td>{entry.records:,}</td>"
        "<td>no data files</td></tr>"
        for entry in freshness
    )
    return (
        '<table id="freshness"><thead><tr><th>table</th><th>partitions</th><th>rows</th><th>last refresh</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _cases_per_month(cases: pa.Table) -> Chart:
    figure = go.Figure()
    series: dict[str, list] = defaultdict(list)
    for row in cases.to_pylist():
        series[row["source_system"]].append((row["month"], row["cases"]))
    for source, points in sorted(series.items()):
        months: list = []
        counts: list = []
        for run in consecutive_months(sorted(points)):
            months += [month for month, _ in run] + [None]
            counts += [count for _, count in run] + [None]
        figure.add_scatter(
            x=months[:-1], y=counts[:-1], name=source, mode="lines+markers", line={"color": SOURCE_COLORS.get(source)}
        )
    if series.get("new_system"):
        switch = min(month for month, _ in series["new_system"])
        figure.add_vline(x=switch, line_dash="dash", line_color="grey")
        figure.add_annotation(x=switch, y=1, yref="paper", text=f"new CRM from {switch:%b %Y}", showarrow=False)
    figure.update_layout(title="Cases opened per month, by source system", yaxis_title="cases", hovermode="x unified")
    return Chart("cases-per-month", figure)


def _per_year_bars(
    element_id: str,
    rows: list[dict],
    label: str,
    value: str,
    count: str,
    title: str,
    hover: str,
    percent: bool = False,
) -> Chart:
    """One horizontal bar trace per year; `count` (the cases behind each bar) is shown on hover."""
    figure = go.Figure()
    years = tuple(sorted({row["year"] for row in rows}))
    for year in years:
        in_year = sorted(
            (row for row in rows if row["year"] == year and row[value] is not None), key=lambda r: r[value]
        )
        figure.add_bar(
            x=[row[value] for row in in_year],
            y=[row[label] or NOT_GIVEN for row in in_year],
            orientation="h",
            name=year,
            hovertemplate=hover,
            customdata=[[row[count]] for row in in_year],
        )
    figure.update_layout(title=title, height=max(400, 22 * len({row[label] for row in rows}) + 120), showlegend=False)
    if percent:
        figure.update_xaxes(tickformat=".0%", range=[0, 1])
    return Chart(element_id, figure, years)


def _median_hours_by_neighborhood(rows: list[dict]) -> Chart:
    return _per_year_bars(
        "median-hours-by-neighborhood",
        rows,
        "neighborhood",
        "median_hours_to_close",
        "opened",
        "Median hours to close, by neighborhood",
        "%{y}: %{x:.1f} h median (%{customdata[0]} cases opened)<extra></extra>",
    )


def _on_time_share_by_department(rows: list[dict]) -> Chart:
    return _per_year_bars(
        "on-time-share-by-department",
        rows,
        "department",
        "on_time_share",
        "with_on_time",
        "On-time share, by department",
        "%{y}: %{x:.1%} on time (%{customdata[0]} cases with a target)<extra></extra>",
        percent=True,
    )


def _intake(rows: list[dict]) -> Chart:
    figure = go.Figure()
    years = tuple(sorted({row["year"] for row in rows}))
    for year in years:
        grid = [[0] * 24 for _ in WEEKDAYS]
        for row in rows:
            if row["year"] == year:
                grid[row["weekday"] - 1][row["hour"]] += row["cases_opened"]
        figure.add_heatmap(
            z=grid,
            x=list(range(24)),
            y=list(WEEKDAYS),
            name=year,
            colorscale="Viridis",
            hovertemplate="%{y} %{x}:00: %{z} cases<extra></extra>",
        )
    figure.update_layout(title="Cases opened by weekday and hour of day (Boston time)", xaxis_title="hour")
    figure.update_yaxes(autorange="reversed")
    return Chart("intake-by-weekday-and-hour", figure, years)


def _open_cases_map(rows: list[dict]) -> Chart:
    """Open cases per grid cell over longitude/latitude; no base map, since map tiles would need the network."""
    figure = go.Figure()
    years = tuple(sorted({row["year"] for row in rows}))
    for year in years:
        in_year = [row for row in rows if row["year"] == year]
        figure.add_scatter(
            x=[row["longitude"] for row in in_year],
            y=[row["latitude"] for row in in_year],
            mode="markers",
            name=year,
            marker={
                "symbol": "square",
                "size": 9,
                "color": [row["open_cases"] for row in in_year],
                "colorscale": "OrRd",
                "showscale": True,
                "colorbar": {"title": "open cases"},
            },
            customdata=[row["open_cases"] for row in in_year],
            hovertemplate="%{y:.3f}, %{x:.3f}: %{customdata} open cases<extra></extra>",
        )
    figure.update_layout(
        title=f"Open cases by {questions.GRID_DEGREES}° cell (cases with no close time)",
        xaxis_title="longitude",
        yaxis_title="latitude",
        height=600,
    )
    figure.update_yaxes(scaleanchor="x", scaleratio=1.35)  # 1 / cos(42.3°): a degree of longitude is shorter here
    return Chart("open-cases-map", figure, years)
