"""Gold SQL against counts computed here, in plain Python, from the same silver-shaped sample rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.catalog.iceberg import IcebergTables
from boston_lake.lake.stores import SCRATCH_CLAIM, STAGING_DIR
from boston_lake.lake.targets import LocalTarget
from boston_lake.lake.zones.gold import (
    INTAKE,
    SERVICE_LEVELS,
    GoldError,
    GoldPartition,
    GoldRun,
    build_gold_partition,
)
from boston_lake_tests.support.hand_counts import BOSTON, cases_of, expected_intake, expected_service_levels
from boston_lake_tests.support.silver_samples import write_silver_samples, write_silver_year


@pytest.fixture
def lake(tmp_path: Path) -> tuple[IcebergTables, dict[int, str]]:
    written = write_silver_samples(tmp_path)
    return LocalTarget(tmp_path).iceberg(), written


def _read(tables: IcebergTables, key: str) -> pa.Table:
    return pq.read_table(tables.store.uri(key))


@pytest.mark.parametrize("year", [2013, 2023, 2025, 2026])
def test_service_levels_match_hand_counts(lake, silver_rows: pa.Table, year: int) -> None:
    tables, _ = lake
    built = build_gold_partition(tables, SERVICE_LEVELS, year)
    assert built.key.startswith(f"gold/boston311/service_levels/data/year={year}/")
    _assert_service_levels_match_hand_counts(tables, built, cases_of(silver_rows, year))


@pytest.mark.parametrize("year", [2022, 2025])
def test_intake_matches_hand_counts(lake, silver_rows: pa.Table, year: int) -> None:
    tables, _ = lake
    built = build_gold_partition(tables, INTAKE, year)
    assert _intake(tables, built) == expected_intake(cases_of(silver_rows, year))


# Opening times where Boston's local month, day or hour is not the UTC one, around both daylight saving switches
# of 2023 (one local hour skipped, one lived twice) and to the microsecond before a local midnight.
EDGES_2023 = (
    "2023-01-01 04:59:59.999999",  # 2022-12-31 23:59 local: not in 2023, kept out of the rows below
    "2023-01-01 05:00:00",
    "2023-03-01 04:59:59.999999",  # February, locally
    "2023-03-01 05:00:00",
    "2023-03-12 06:59:59",  # 01:59 EST, then the clock jumps to 03:00 EDT
    "2023-03-12 07:00:00",
    "2023-07-01 03:59:59.999999",  # 30 June, locally
    "2023-07-01 04:00:00",
    "2023-11-05 05:30:00",  # 01:30 EDT ...
    "2023-11-05 06:30:00",  # ... and 01:30 EST, the hour lived twice
    "2023-11-05 07:00:00",
    "2024-01-01 04:59:59.999999",  # 31 December 2023, locally
)


def test_cases_count_in_the_local_month_day_and_hour_boston_saw_them_open(tmp_path: Path, silver_rows) -> None:
    """Each answer's local time is looked up per UTC hour; at the edges it is what each case's own conversion
    gives, as hand_counts computes it."""
    template = silver_rows.filter(pc.equal(silver_rows.column("year"), 2023)).slice(0, 1).to_pylist()[0]
    opened = [datetime.fromisoformat(moment).replace(tzinfo=UTC) for moment in EDGES_2023]
    cases = [
        {**template, "case_id": f"edge-{number}", "opened_at": at, "closed_at": at + timedelta(hours=number + 1)}
        for number, at in enumerate(opened)
        if at.astimezone(BOSTON).year == 2023
    ]
    assert len(cases) == len(EDGES_2023) - 1
    write_silver_year(tmp_path, 2023, pa.Table.from_pylist(cases, schema=silver_rows.schema))
    tables = LocalTarget(tmp_path).iceberg()

    _assert_service_levels_match_hand_counts(tables, build_gold_partition(tables, SERVICE_LEVELS, 2023), cases)
    assert _intake(tables, build_gold_partition(tables, INTAKE, 2023)) == expected_intake(cases)


def _assert_service_levels_match_hand_counts(tables: IcebergTables, built: GoldPartition, cases: list[dict]) -> None:
    expected = expected_service_levels(cases)
    got = _read(tables, built.key).to_pylist()
    assert built.rows == len(got) == len(expected)
    assert built.silver_rows == len(cases)
    for row in got:
        assert row["year"] == built.year
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


def _intake(tables: IcebergTables, built: GoldPartition) -> dict[tuple, int]:
    return {
        (row["opened_date"], row["weekday"], row["hour"], row["channel"]): row["cases_opened"]
        for row in _read(tables, built.key).to_pylist()
    }


def test_a_year_without_silver_is_an_error_naming_the_table_and_the_year(lake) -> None:
    tables, _ = lake
    with pytest.raises(GoldError, match=r"gold/intake 2019: the silver table boston311.service_requests has no data"):
        build_gold_partition(tables, INTAKE, 2019)
    assert tables.load("intake") is None


def test_silver_without_a_column_the_sql_needs_fails_naming_the_sql_and_the_file(lake) -> None:
    tables, written = lake
    path = tables.store.uri(written[2023])
    pq.write_table(pq.read_table(path).drop_columns(["channel"]), path)
    with pytest.raises(GoldError, match=r"(?s)gold/intake 2023: intake.sql failed on silver .*year=2023.*channel"):
        build_gold_partition(tables, INTAKE, 2023)


def test_the_memory_limit_reaches_duckdb_and_running_out_commits_nothing(lake) -> None:
    tables, _ = lake
    with pytest.raises(GoldError, match=r"(?s)gold/intake 2025: intake.sql failed on silver .*Out of Memory"):
        build_gold_partition(tables, INTAKE, 2025, memory_limit="1MB")
    assert tables.load("intake") is None


def test_a_gold_year_is_one_iceberg_commit_through_the_partition_protocol(lake, tmp_path: Path) -> None:
    """Claimed while it builds, not built again from the same silver and SQL, rebuilt when silver changes (a new
    snapshot replacing the year's file), and the year as the lake before Iceberg kept it is gone once committed."""
    tables, _ = lake
    legacy = layout.data_key("gold", "intake", 2025)
    tables.store.put_bytes(legacy, b"the year before Iceberg")
    first = build_gold_partition(tables, INTAKE, 2025, run_id="run-1")
    assert first.changed and not tables.store.exists(legacy)
    table = tables.table("intake")
    assert [f.file_path for f in tables.files(table, year=2025)] == [tables.store.uri(first.key)]

    again = build_gold_partition(tables, INTAKE, 2025)
    assert not again.changed and "already built" in again.reason
    assert (again.rows, again.silver_rows, again.snapshot_id) == (first.rows, first.silver_rows, first.snapshot_id)

    with tables.store.workspace("gold.intake.2025"), pytest.raises(GoldError, match="is being written by another run"):
        build_gold_partition(tables, INTAKE, 2025)

    silver_table = tables.table("service_requests")
    [silver_file] = tables.files(silver_table, year=2025)
    fewer = pq.read_table(silver_file.file_path).slice(1)  # silver 2025 republished with one case less
    key = tables.data_key("silver", "service_requests", 2025)
    Path(tables.store.uri(key)).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(fewer, tables.store.uri(key))
    tables.replace_year(silver_table, 2025, key, fewer.num_rows, "fewer", None)

    rebuilt = build_gold_partition(tables, INTAKE, 2025, run_id="run-2")
    assert rebuilt.changed and rebuilt.silver_rows == first.silver_rows - 1
    table = tables.table("intake")
    assert [f.file_path for f in tables.files(table, year=2025)] == [tables.store.uri(rebuilt.key)]
    history = tables.history(table)
    assert [(entry.year, entry.run_id) for entry in history] == [("2025", "run-1"), ("2025", "run-2")]
    assert history[-1].snapshot_id == rebuilt.snapshot_id


def test_a_run_of_many_years_builds_each_as_alone_with_the_sql_ahead_of_the_commits(lake) -> None:
    """A run lists silver and the gold table once and runs the SQL of the years it builds ahead of their commits:
    each year as built alone; a year already built is left as it is (nothing run ahead for it), and a year without
    silver is that year's error, once the years before it are committed."""
    tables, _ = lake
    built = build_gold_partition(tables, INTAKE, 2023)
    with GoldRun(tables, INTAKE, run_id="run-1") as run:
        first = run.build([2023, 2025, 2026])
        assert run.years_ahead == [2025, 2026]
    assert [partition.changed for partition in first] == [False, True, True]
    assert first[0].snapshot_id == built.snapshot_id
    listed = tables.keys_by_year("service_requests")
    assert [partition.silver_files for partition in first] == [
        tuple(sorted(listed[year])) for year in (2023, 2025, 2026)
    ]
    history = tables.history(tables.table("intake"))
    assert [(entry.year, entry.run_id) for entry in history] == [("2023", ""), ("2025", "run-1"), ("2026", "run-1")]
    for partition in first[1:]:
        alone = build_gold_partition(tables, INTAKE, partition.year, force=True)
        assert _read(tables, alone.key).equals(_read(tables, partition.key))
    with (
        GoldRun(tables, INTAKE) as run,
        pytest.raises(GoldError, match=r"gold/intake 2019: the silver table .* no data"),
    ):
        run.build([2013, 2019])
    assert 2013 in tables.keys_by_year("intake")
    assert _staged(tables) == []


def test_answers_computed_ahead_for_years_a_failed_run_never_reached_are_removed(lake) -> None:
    """The SQL ahead writes into the lake's staging area; a run that fails before a year's commit leaves nothing
    there (and a killed run's files are the next run's to sweep, as every scratch file's)."""
    tables, _ = lake
    with GoldRun(tables, INTAKE, force=True) as run:
        with pytest.raises(GoldError, match=r"gold/intake 2019"):
            run.build([2019, 2025, 2026])
        assert run.years_ahead == [2025, 2026]
        assert len([name for name in _staged(tables) if name.endswith(SCRATCH_CLAIM)]) == 2  # claimed by the run
    assert tables.load("intake") is None
    assert _staged(tables) == []


def _staged(tables: IcebergTables) -> list[str]:
    """The files in the lake's staging area (claims' lock files aside)."""
    staging = Path(tables.store.uri(STAGING_DIR))
    return sorted(path.name for path in staging.rglob("*") if path.is_file() and path.suffix != ".lock")
