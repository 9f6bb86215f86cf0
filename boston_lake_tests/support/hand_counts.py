"""The gold answers computed by hand, in plain Python over silver rows, to judge the SQL and the charts by."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date
from zoneinfo import ZoneInfo

import pyarrow as pa

BOSTON = ZoneInfo("America/New_York")


def cases_of(rows: pa.Table, year: int) -> list[dict]:
    return [case for case in rows.to_pylist() if case["year"] == year]


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the two nearest ranks, as SQL's percentile_cont defines it."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def expected_service_levels(cases: list[dict]) -> dict[tuple, dict]:
    """(grain, month, source_system, neighborhood, case_type, department) -> measures, as service_levels.sql says."""
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
    """(local date, ISO weekday, local hour, channel) -> cases opened."""
    counts: dict[tuple, int] = defaultdict(int)
    for case in cases:
        local = case["opened_at"].astimezone(BOSTON)
        counts[(local.date(), local.isoweekday(), local.hour, case["channel"])] += 1
    return dict(counts)
