"""bench_history's verdicts on made-up figures: each ratio against its target, and the bound that a do-nothing
Dagster run sets on the ratios whose runs are Dagster runs (a target below it is out of reach, and says so)."""

from __future__ import annotations

from benchmarks.bench_backfill import Results, Run
from benchmarks.bench_bronze import RSS_TARGET_MIB
from benchmarks.bench_history import (
    AGGREGATION,
    BACKFILL_RUNS,
    CONVERSION,
    DIRECT,
    FETCH,
    GOLD,
    NOOP,
    QUERY,
    REFRESH,
    REWRITE,
    REWRITE_ONE,
    RSS_FLOOR,
    RSS_FLOOR_ONE_THREAD,
    SILVER,
    SILVER_ONE,
    verdicts,
)


def results(seconds: dict[str, float], peaks_mib: dict[str, int] | None = None) -> Results:
    made_up = Results()
    for name, value in seconds.items():
        peak = (peaks_mib or {}).get(name, 100)
        made_up.add(name, Run(seconds=value, peak_rss_kib=peak * 1024), lambda message: None)
    return made_up


def test_a_target_below_what_an_empty_run_costs_is_named_out_of_reach() -> None:
    figures = {name: 10.0 for name in BACKFILL_RUNS} | {
        SILVER: 40.0,
        GOLD: 8.0,
        FETCH: 16.0,
        CONVERSION: 20.0,
        REWRITE: 10.0,
        AGGREGATION: 2.0,
        SILVER_ONE: 5.0,
        REWRITE_ONE: 1.0,
        NOOP: 6.0,  # two do-nothing runs: 3 s each
        REFRESH: 6.0,
        QUERY: 0.02,
        DIRECT: 0.02,
        RSS_FLOOR: 3.0,
        RSS_FLOOR_ONE_THREAD: 5.0,
    }
    lines = {line.split(":")[0]: line for line in verdicts(results(figures))}
    one_year = lines["silver of 2023 / plain rewrite of that year"]
    assert "5.00x, target <= 2.5x: MISSED" in one_year
    assert "would be 4.00x (out of reach" in one_year  # (3 s + 1 s) / 1 s
    gold = lines["gold for all years / silver for all years"]
    assert "0.20x, target <= 0.25x: MET" in gold and "would be 0.12x" in gold and "out of reach" not in gold
    end_to_end = lines["full history end to end / floor"]
    # six runs of 3 s of nothing, the 16 s fetch and the floor's 32 s of work: (18 + 16 + 32) / 32
    assert "doing the floor's work and the fetch would be 2.06x (out of reach" in end_to_end
    assert "would be" not in lines["daily refresh of unchanged years / do-nothing run"]


def test_the_rss_verdict_names_the_measured_floor_and_whether_it_alone_exceeds_the_target() -> None:
    figures = dict.fromkeys([*BACKFILL_RUNS, FETCH, CONVERSION, REWRITE, AGGREGATION, SILVER_ONE, REWRITE_ONE], 1.0)
    figures |= {NOOP: 2.0, REFRESH: 2.0, QUERY: 0.02, DIRECT: 0.02, RSS_FLOOR: 1.0, RSS_FLOOR_ONE_THREAD: 1.8}

    def rss_line(floor_mib: int, one_thread_mib: int, silver_mib: int) -> str:
        peaks = {RSS_FLOOR: floor_mib, RSS_FLOOR_ONE_THREAD: one_thread_mib, SILVER: silver_mib}
        [line] = [line for line in verdicts(results(figures, peaks)) if line.startswith("peak RSS of every run")]
        return line

    within = rss_line(floor_mib=250, one_thread_mib=220, silver_mib=320)
    assert f"<= {RSS_TARGET_MIB} MiB: MISSED by silver 2011-2026 (320)" in within
    assert "a Dagster run whose one step converts bronze 2023 peaks at 250.0 MiB, 220.0 MiB with one DuckDB" in within
    assert "reach" not in within
    traded = rss_line(floor_mib=330, one_thread_mib=290, silver_mib=100)
    assert f"<= {RSS_TARGET_MIB} MiB: MET" in traded  # the floors are yardsticks, never judged as runs
    assert "(within reach only at one DuckDB thread, trading the conversion's speed)" in traded
    beyond = rss_line(floor_mib=330, one_thread_mib=310, silver_mib=100)
    assert "310.0 MiB with one DuckDB thread (1.80x the conversion's time) (out of reach for a run that" in beyond
