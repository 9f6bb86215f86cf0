"""Gold SQL against counts computed here, in plain Python, from the same silver-shaped sample rows."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.gold import INTAKE, SERVICE_LEVELS, GoldError, build_gold_partition
from boston_lake.lake.stores import LocalObjectStore
from boston_lake_tests.support.silver_samples import silver_rows, write_silver_samples  # noqa: F401

BOSTON = ZoneInfo("America/New_York")


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the two nearest ranks, as SQL's percentile_cont defines it."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def expected_service_levels(cases: list[dict]) -> dict[tuple, dict]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for case in cases:
        local = case["opened_at"].astimezone(BOSTON)
        month = date(local.year, local.month, 1)
        dims = (case["source_system"], case["neighborhood"], case["case_type"], case["department"])
        groups[("month", month, *dims)].append(case)
        groups[("year_neighborhood", None, None, case["neighborhood"], None, None)].append(case)
        groups[("year_department", None, None, None, None, case["department"])].append(case)
    expected = {}
    for key, members in groups.items():
        hours = [
            (c["closed_at"] - c["opened_at"]).total_seconds() / 3600
            for c in members
            if c["closed_at"] is not None and c["closed_at"] >= c["opened_at"]
        ]
        judged = [c["on_time"] for c in members if c["on_time"] is not None]
        closed = sum(c["closed_at"] is not None for c in members)
        expected[key] = {
            "opened": len(members),
            "closed": closed,
            "still_open": len(members) - closed,
            "median_hours_to_close": percentile_cont(hours, 0.5),
            "p90_hours_to_close": percentile_cont(hours, 0.9),
            "with_on_time": len(judged),
            "on_time": sum(judged),
            "on_time_share": sum(judged) / len(judged) if judged else None,
            "closed_before_opened": sum(
                c["closed_at"] is not None and c["closed_at"] < c["opened_at"] for c in members
            ),
        }
    return expected


def expected_intake(cases: list[dict]) -> dict[tuple, int]:
    counts: dict[tuple, int] = defaultdict(int)
    for case in cases:
        local: datetime = case["opened_at"].astimezone(BOSTON)
        counts[(local.date(), local.isoweekday(), local.hour, case["channel"])] += 1
    return dict(counts)


@pytest.fixture
def lake(tmp_path: Path) -> tuple[LocalObjectStore, dict[int, Path]]:
    return LocalObjectStore(tmp_path), write_silver_samples(tmp_path)


def cases_of(rows: pa.Table, year: int) -> list[dict]:
    return [case for case in rows.to_pylist() if case["year"] == str(year)]


@pytest.mark.parametrize("year", [2013, 2023, 2025, 2026])
def test_service_levels_match_hand_counts(lake, silver_rows: pa.Table, year: int) -> None:  # noqa: F811
    store, _ = lake
    built = build_gold_partition(store, SERVICE_LEVELS, year)
    expected = expected_service_levels(cases_of(silver_rows, year))
    got = pq.read_table(store.path(built.key)).to_pylist()

    assert built.key == layout.data_key("gold", "service_levels", year)
    assert built.rows == len(got) == len(expected)
    assert built.silver_rows == len(cases_of(silver_rows, year))
    for row in got:
        key = (
            row["grain"],
            row["month"],
            row["source_system"],
            row["neighborhood"],
            row["case_type"],
            row["department"],
        )
        want = expected[key]
        for measure, value in want.items():
            assert row[measure] == (pytest.approx(value) if isinstance(value, float) else value), (key, measure)
    month_rows = [row for row in got if row["grain"] == "month"]
    assert sum(row["opened"] for row in month_rows) == built.silver_rows  # every case counted once per grain


@pytest.mark.parametrize("year", [2022, 2025])
def test_intake_matches_hand_counts(lake, silver_rows: pa.Table, year: int) -> None:  # noqa: F811
    store, _ = lake
    built = build_gold_partition(store, INTAKE, year)
    got = {
        (row["opened_date"], row["weekday"], row["hour"], row["channel"]): row["cases_opened"]
        for row in pq.read_table(store.path(built.key)).to_pylist()
    }
    assert got == expected_intake(cases_of(silver_rows, year))


def test_a_year_without_silver_is_an_error_naming_where_it_looked(lake) -> None:
    store, _ = lake
    with pytest.raises(GoldError, match=r"gold/intake 2019: silver has no Parquet under .*year=2019"):
        build_gold_partition(store, INTAKE, 2019)
    assert not store.exists(layout.data_key("gold", "intake", 2019))


def test_silver_without_a_column_the_sql_needs_fails_naming_the_sql_and_the_file(lake) -> None:
    store, written = lake
    pq.write_table(pq.read_table(written[2023]).drop_columns(["channel"]), written[2023])
    with pytest.raises(GoldError, match=r"(?s)gold/intake 2023: intake.sql failed on silver .*year=2023.*channel"):
        build_gold_partition(store, INTAKE, 2023)
