"""Gold SQL against counts computed here, in plain Python, from the same silver-shaped sample rows."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.aws.s3 import S3ObjectStore
from boston_lake.lake.stores import LocalObjectStore
from boston_lake.lake.zones.gold import INTAKE, SERVICE_LEVELS, GoldError, build_gold_partition
from boston_lake_tests.support.hand_counts import cases_of, expected_intake, expected_service_levels
from boston_lake_tests.support.silver_samples import write_silver_samples


@pytest.fixture
def lake(tmp_path: Path) -> tuple[LocalObjectStore, dict[int, Path]]:
    return LocalObjectStore(tmp_path), write_silver_samples(tmp_path)


@pytest.mark.parametrize("year", [2013, 2023, 2025, 2026])
def test_service_levels_match_hand_counts(lake, silver_rows: pa.Table, year: int) -> None:
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
def test_intake_matches_hand_counts(lake, silver_rows: pa.Table, year: int) -> None:
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


def test_on_s3_a_gold_year_reads_silver_and_publishes_one_object_through_the_store(aws_client, aws_buckets, tmp_path):
    store = S3ObjectStore(aws_client("s3"), aws_buckets.lake)
    for year, path in write_silver_samples(tmp_path).items():
        store.put_bytes(layout.data_key("silver", "service_requests", year), path.read_bytes())
    local = build_gold_partition(LocalObjectStore(tmp_path), INTAKE, 2025)
    built = build_gold_partition(store, INTAKE, 2025)
    assert built.key == local.key and built.rows == local.rows and built.silver_rows == local.silver_rows
    assert [stored.key for stored in store.list("gold/")] == [layout.data_key("gold", "intake", 2025)]
    published = pq.read_table(pa.BufferReader(store.get_bytes(built.key)))
    assert published.equals(pq.read_table(tmp_path / local.key))


def test_the_memory_limit_reaches_duckdb_and_running_out_publishes_nothing(lake) -> None:
    store, _ = lake
    with pytest.raises(GoldError, match=r"(?s)gold/intake 2025: intake.sql failed on silver .*Out of Memory"):
        build_gold_partition(store, INTAKE, 2025, memory_limit="1MB")
    assert not store.exists(layout.data_key("gold", "intake", 2025))


def test_a_gold_year_is_published_through_the_partition_protocol(lake) -> None:
    """Claimed while it builds, not built again from the same silver and SQL, rebuilt when silver's content changes,
    and the only data file of its partition once published."""
    store, written = lake
    first = build_gold_partition(store, INTAKE, 2025)
    assert first.changed
    published = store.path(first.key)
    built_at = published.stat().st_mtime_ns

    again = build_gold_partition(store, INTAKE, 2025)
    assert not again.changed and "already built" in again.reason
    assert (again.rows, again.silver_rows, again.schema) == (first.rows, first.silver_rows, first.schema)
    assert published.stat().st_mtime_ns == built_at

    with store.workspace("gold.intake.2025"), pytest.raises(GoldError, match="is being written by another run"):
        build_gold_partition(store, INTAKE, 2025)

    stray = layout.partition_prefix("gold", "intake", 2025) + "part-00001.parquet"
    store.put_bytes(stray, published.read_bytes())  # another writer's file would double the year
    silver = pq.read_table(written[2025])
    pq.write_table(silver.slice(1), written[2025])  # silver 2025 rebuilt with one case less
    rebuilt = build_gold_partition(store, INTAKE, 2025)
    assert rebuilt.changed and rebuilt.silver_rows == first.silver_rows - 1
    assert [stored.key for stored in store.list(layout.partition_prefix("gold", "intake", 2025))] == [rebuilt.key]
