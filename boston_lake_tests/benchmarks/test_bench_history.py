"""The full-history benchmark's harness at a tiny scale: that every run and floor goes through, checked for what
it produced (every generated row in bronze, every year in silver), and that the report judges each target (never
how fast anything was)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_history import BACKFILL_RUNS, FETCH, FLOORS, generate_history, measure, report

pytestmark = pytest.mark.e2e


def test_every_run_and_floor_of_the_history_goes_through_and_each_target_is_judged(tmp_path: Path) -> None:
    legacy, new_system, new_system_rows = generate_history(0.0002, tmp_path / "generated")
    assert sorted(legacy) == list(range(2011, 2027)) and new_system_rows > 0
    results, loads = measure(legacy, new_system, new_system_rows, tmp_path)
    assert set(BACKFILL_RUNS) | set(FLOORS) | {FETCH} <= set(results.runs) == set(loads)
    assert all(run.seconds > 0 and run.peak_rss_kib > 0 for runs in results.runs.values() for run in runs)
    text = report(results, loads, legacy, new_system, 0.0002)
    judged = [line for line in text.splitlines() if line.startswith("- ") and ("MET" in line or "MISSED" in line)]
    for target in ("end to end / floor", "gold for all years", "plain rewrite", "DuckDB directly", "do-nothing"):
        assert any(target in line and "target <=" in line for line in judged), (target, judged)
    assert any(line.startswith("- peak RSS of every run <= 300 MiB: ") for line in judged)
