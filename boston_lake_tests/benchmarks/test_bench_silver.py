"""The silver benchmark's harness at a tiny size: what it generates and how it counts rows (never how fast)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pytest

from benchmarks.bench_bronze import BenchError
from benchmarks.bench_silver import Expected, check_silver, listed_years, measure, run_silver, verdicts
from boston_lake.lake.targets import LocalTarget

CASES = 2_000
YEAR = 2023


def test_each_year_lists_its_neighbours_new_year_cases_too(tmp_path: Path) -> None:
    years = listed_years(YEAR, CASES, 2, tmp_path)
    assert sorted(years) == [YEAR - 1, YEAR, YEAR + 1]
    center = years[YEAR]
    [(rows, ids, before, after)] = duckdb.sql(
        f"SELECT count(*), count(DISTINCT case_enquiry_id), "
        f"count(*) FILTER (WHERE year(open_dt) = {YEAR - 1}), count(*) FILTER (WHERE year(open_dt) = {YEAR + 1}) "
        f"FROM read_csv('{center.csv.path}')"
    ).fetchall()
    assert rows == ids == center.csv.rows == center.own_rows + center.copied_rows
    assert before > 0 and after > 0 and before + after == center.copied_rows
    # The first and last years have one neighbour each in the benchmark: they list its cases only.
    assert 0 < years[YEAR - 1].copied_rows < center.copied_rows
    assert listed_years(YEAR, CASES, 2, tmp_path) == years  # generated once, reused


# The harness runs silver and bronze in child processes, as the benchmark does.
@pytest.mark.e2e
def test_silver_and_bronze_are_measured_and_silver_rows_are_accounted_for(tmp_path: Path) -> None:
    m = measure(YEAR, CASES, 2, tmp_path, repeat=1)
    assert len(m.bronze) == len(m.silver) == len(m.rewrite) == 1
    # Copies of cases near New Year were merged, and silver holds one row per case opened in the year.
    assert m.duplicates > 0 and 0 < m.silver_rows < m.bronze_rows < m.bronze_read
    assert all(run.peak_rss_kib >= run.start_rss_kib > 0 for run in m.bronze + m.silver + m.rewrite)
    assert [line.split(":")[0] for line in verdicts(m)] == [
        "Speed (silver <= 0.5x bronze of the same year)",
        "Memory (silver peak RSS <= 300 MiB)",
        "Floor",
        "Rows",
    ]
    # A count that does not match what silver wrote stops the run, naming the year and the mismatch.
    lake = tmp_path / "silver-lake"
    expected = Expected(rows=m.silver_rows, duplicates=m.duplicates, bronze_rows=m.bronze_read)
    with pytest.raises(BenchError, match=rf"silver {YEAR} in .*bronze has {m.silver_rows + 1} cases opened"):
        run_silver(lake, YEAR, dataclasses.replace(expected, rows=m.silver_rows + 1), tmp_path)
    with pytest.raises(BenchError, match="ledger: 1 candidates"):
        check_silver(
            lake,
            YEAR,
            expected,
            {
                "key": LocalTarget(lake).iceberg().keys_by_year("service_requests")[YEAR][0],
                "rows": m.silver_rows,
                "bronze_rows_read": m.bronze_read,
                "ledger": {"candidate_rows": 1, "duplicates_merged": m.duplicates, "moved_to_neighbour_year": 0},
            },
        )
