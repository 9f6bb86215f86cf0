"""`boston-lake report` as a person meets it: the command writes one HTML file, and the OS's Chromium opens it
with every network request refused, draws every chart without a console error, and shows the hand-counted numbers.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest
from playwright.sync_api import Page, sync_playwright

from boston_lake.lake.answers.charts import NOT_GIVEN
from boston_lake_tests.support.hand_counts import BOSTON, cases_of, expected_service_levels
from boston_lake_tests.test_cli import boston_lake

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package, installed by .ci/run; never a downloaded browser
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHARTS = {  # element id -> what marks a drawn data point
    "cases-per-month": ".scatterlayer .point",
    "median-hours-by-neighborhood": ".barlayer .point",
    "on-time-share-by-department": ".barlayer .point",
    "intake-by-weekday-and-hour": ".heatmaplayer image",
    "open-cases-map": ".scatterlayer .point",
}


def visible_trace(page: Page, element_id: str) -> dict:
    traces = page.evaluate(
        f"() => document.getElementById('{element_id}').data"
        ".filter(t => t.visible !== false).map(t => ({name: t.name, x: t.x, y: t.y}))"
    )
    assert len(traces) == 1, traces
    return traces[0]


def bars(trace: dict) -> dict[str, float]:
    return dict(zip(trace["y"], trace["x"], strict=True))


def hand_bars(rows: pa.Table, year: int, grain: str, dimension: int, measure: str) -> dict[str, float]:
    return {
        key[dimension] or NOT_GIVEN: values[measure]
        for key, values in expected_service_levels(cases_of(rows, year)).items()
        if key[0] == grain and values[measure] is not None
    }


def hand_cases_per_month(rows: pa.Table) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for case in rows.to_pylist():
        local = case["opened_at"].astimezone(BOSTON)
        counts[case["source_system"]][f"{local:%Y-%m}-01"] += 1
    return {source: dict(months) for source, months in counts.items()}


@pytest.mark.browser
def test_the_report_opens_offline_in_chromium_with_every_chart_drawn_from_the_hand_counted_numbers(
    gold_lake_home: Path, silver_rows: pa.Table, tmp_path: Path
) -> None:
    out = tmp_path / "site" / "report.html"
    result = boston_lake("report", "--out", str(out), env={"BOSTON_LAKE_HOME": str(gold_lake_home)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"report written to {out.resolve()}"
    assert CHROMIUM.is_file(), "Chromium is missing: .ci/run installs Debian's chromium package"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        network: list[str] = []
        browser.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith("file:")
                else (network.append(route.request.url), route.abort())
            ),
        )
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(out.as_uri())
        page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot').length === {len(CHARTS)}")

        for element_id, marks in CHARTS.items():
            assert page.locator(f"#{element_id} {marks}").count() > 0, f"{element_id} drew no data"

        # The per-year charts show the newest year first, then follow the year filter.
        assert page.locator("#year-filter").input_value() == "2026"
        for year in (2026, 2025):
            page.select_option("#year-filter", str(year))
            assert bars(visible_trace(page, "median-hours-by-neighborhood")) == pytest.approx(
                hand_bars(silver_rows, year, "year_neighborhood", 3, "median_hours_to_close")
            )
            assert bars(visible_trace(page, "on-time-share-by-department")) == pytest.approx(
                hand_bars(silver_rows, year, "year_department", 5, "on_time_share")
            )
        drawn = page.evaluate("() => document.getElementById('cases-per-month').data.map(t => [t.name, t.x, t.y])")
        assert {
            source: {month: count for month, count in zip(months, counts, strict=True) if month is not None}
            for source, months, counts in drawn
        } == hand_cases_per_month(silver_rows)

        # Hovering a bar shows its value.
        bar = page.locator("#median-hours-by-neighborhood .barlayer .point").first
        bar.scroll_into_view_if_needed()
        box = bar.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
        page.wait_for_selector("#median-hours-by-neighborhood .hoverlayer .hovertext")
        assert " h median (" in (page.locator("#median-hours-by-neighborhood .hoverlayer").text_content() or "")

        freshness = page.locator("#freshness tbody tr").all_inner_texts()
        assert [row.split("\t")[0] for row in freshness] == [
            "boston311.intake",
            "boston311.service_levels",
            "boston311.service_requests",
        ]
        assert page.locator("#newest-case").inner_text() == "2026-02-10 22:54 UTC"
        browser.close()

    assert problems == []
    assert network == [], "the report asked the network for something"


def test_the_report_says_what_to_materialize_when_gold_is_missing(tmp_path: Path) -> None:
    result = boston_lake("report", "--out", str(tmp_path / "r.html"), env={"BOSTON_LAKE_HOME": str(tmp_path / "empty")})
    assert result.returncode == 1
    assert "materialize silver/service_requests, gold/service_levels and gold/intake first" in result.stderr
    assert not (tmp_path / "r.html").exists()
