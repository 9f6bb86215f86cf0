"""The bronze benchmark's harness on a ~1 MB file: what it generates and what it checks (never how fast)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from benchmarks.bench_bronze import (
    SHAPES,
    BenchError,
    Generated,
    generate_csv,
    measure,
    parse_engines,
    run_engine,
    verdicts,
)
from boston_lake.lake.zones.bronze import convert_csv

SIZE = 1_000_000


@pytest.fixture(scope="module")
def legacy_csv(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return generate_csv(SHAPES["legacy_v2"], SIZE, tmp_path_factory.mktemp("bench"))


def test_generated_rows_have_fresh_unique_ids_and_open_dates_within_one_year(legacy_csv: Generated) -> None:
    [(ids, distinct, first, last, closed_before_open)] = duckdb.sql(
        f"SELECT count(*), count(DISTINCT case_enquiry_id), min(open_dt), max(open_dt), "
        f"count(*) FILTER (WHERE closed_dt < open_dt) FROM read_csv('{legacy_csv.path}')"
    ).fetchall()
    assert ids == distinct == legacy_csv.rows
    assert first.year == last.year == SHAPES["legacy_v2"].year
    assert closed_before_open == 0
    assert SIZE <= legacy_csv.bytes == legacy_csv.path.stat().st_size < SIZE * 1.01


def test_a_generated_file_is_reused_for_the_same_size(legacy_csv: Generated) -> None:
    modified = legacy_csv.path.stat().st_mtime_ns
    assert generate_csv(SHAPES["legacy_v2"], SIZE, legacy_csv.path.parent) == legacy_csv
    assert legacy_csv.path.stat().st_mtime_ns == modified


def test_new_system_rows_convert_without_rejects(tmp_path: Path) -> None:
    generated = generate_csv(SHAPES["new_system"], SIZE, tmp_path)
    conversion = convert_csv(generated.path, tmp_path / "out.parquet", SHAPES["new_system"].table)
    assert (conversion.rows, conversion.rejects) == (generated.rows, 0)


def test_bronze_and_duckdb_convert_every_generated_row(legacy_csv: Generated, tmp_path: Path) -> None:
    measurements = measure(["1MB"], parse_engines("bronze,duckdb_plain"), SHAPES["legacy_v2"], tmp_path, repeat=1)
    assert [(m.engine, m.rows) for m in measurements] == [
        ("bronze", legacy_csv.rows),
        ("duckdb_plain", legacy_csv.rows),
    ]
    assert all(m.peak_rss_mib >= m.start_rss_mib > 0 for m in measurements)
    assert [line.split(":")[0] for line in verdicts(measurements)] == [
        "Throughput (bronze >= fastest baseline engine)",
        "Memory (bronze peak RSS <= 300 MiB at every size)",
    ]


def test_an_output_short_of_the_generated_rows_is_an_error(legacy_csv: Generated, tmp_path: Path) -> None:
    claimed = Generated(legacy_csv.path, legacy_csv.shape, legacy_csv.rows + 1, legacy_csv.bytes)
    with pytest.raises(
        BenchError,
        match=rf"duckdb_plain on .*: the Parquet holds {legacy_csv.rows} rows, "
        rf"the CSV {legacy_csv.rows + 1}",
    ):
        run_engine(parse_engines("duckdb_plain")[0], claimed, tmp_path)


def test_engine_settings_are_parsed_and_checked() -> None:
    bronze, plain = parse_engines("bronze[threads=1,memory_limit=128MB,preserve_insertion_order=false],duckdb_plain")
    assert bronze.options == {"threads": 1, "memory_limit": "128MB", "preserve_insertion_order": False}
    assert (bronze.is_baseline, plain.is_baseline) == (False, True)
    with pytest.raises(BenchError, match="only bronze and duckdb_plain take settings"):
        parse_engines("pandas_seed[threads=1]")
    with pytest.raises(BenchError, match="engine 'spark': expected one of"):
        parse_engines("spark")
    with pytest.raises(BenchError, match=r"engine 'bronze\[threads=1': expected one of"):
        parse_engines("bronze[threads=1,duckdb_plain")
    with pytest.raises(BenchError, match="engine 'bronze' is listed twice"):
        parse_engines("bronze,duckdb_plain,bronze")
