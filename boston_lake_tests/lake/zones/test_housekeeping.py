"""Housekeeping of the Iceberg tables: expiry keeps what readers and "already built?" need; unread files go, never
one a running build holds."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from boston_lake.lake.catalog.iceberg import IcebergTables, TimeTravel
from boston_lake.lake.clock import utc_now
from boston_lake.lake.targets import LocalTarget
from boston_lake.lake.zones.housekeeping import keep_tables
from boston_lake_tests.support.indexed_plans import indexed_plans

LOG = logging.getLogger(__name__)
ZONE, TABLE = "silver", "service_requests"


def publish(tables: IcebergTables, year: int, cases: int) -> tuple[int, str]:
    rows = pa.table({"case_id": [f"{year}-{n}" for n in range(cases)], "year": pa.array([year] * cases, pa.int32())})
    key = write(tables, rows, year)
    table = tables.open(ZONE, TABLE, rows.schema)
    return tables.replace_year(table, year, key, cases, f"{year}/{cases}", "run").snapshot_id, key


def write(tables: IcebergTables, rows: pa.Table, year: int) -> str:
    key = tables.data_key(ZONE, TABLE, year)
    Path(tables.store.uri(key)).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, tables.store.uri(key))
    return key


def test_expiry_keeps_the_current_the_monthly_and_the_publishing_snapshots_and_unread_files_go(tmp_path: Path):
    tables = LocalTarget(tmp_path).iceberg()
    first, first_file = publish(tables, 2024, 3)
    second, second_file = publish(tables, 2024, 4)
    other, _ = publish(tables, 2025, 2)
    current, current_file = publish(tables, 2024, 5)
    failed = write(tables, pa.table({"case_id": ["x"], "year": pa.array([2024], pa.int32())}), 2024)  # never committed

    assert [u.expired for u in keep_tables(tables, 90, LOG)] == [[]]  # all younger than 90 days
    assert not tables.store.exists(failed), "a file no snapshot reads goes at once"

    (upkeep,) = keep_tables(tables, 90, LOG, now=utc_now() + timedelta(days=200))
    # 2025's file was published by `other`, 2024's by `current`: both stay; the month's last is `current` too.
    assert upkeep.expired == sorted([first, second]) and upkeep.kept == 2
    table = tables.table(TABLE)
    assert [s.snapshot_id for s in table.snapshots()] == [other, current]
    assert not tables.store.exists(first_file), "only the expired snapshots read it"
    assert tables.store.exists(second_file) and tables.store.exists(current_file), "`other` still reads 2024's second"
    assert [f.record_count for f in tables.files(table, table.snapshot_by_id(other), year=2024)] == [4]
    assert tables.publication(table, current_file).snapshot_id == current


def test_a_year_a_running_build_holds_is_left_for_the_next_time(tmp_path: Path):
    tables = LocalTarget(tmp_path).iceberg()
    publish(tables, 2024, 3)
    staged = write(tables, pa.table({"case_id": ["x"], "year": pa.array([2024], pa.int32())}), 2024)
    with tables.store.workspace(f"{ZONE}.{TABLE}.2024"):  # a build of 2024 copied its file and is committing
        (upkeep,) = keep_tables(tables, 90, LOG)
    assert upkeep.busy_years == [2024] and tables.store.exists(staged)
    assert "2024 being built, swept next time" in upkeep.line()
    (upkeep,) = keep_tables(tables, 90, LOG)
    assert upkeep.removed == [staged] and not tables.store.exists(staged)


def test_the_snapshot_index_forgets_the_snapshots_the_table_no_longer_has_and_still_plans_the_kept_ones(
    tmp_path: Path,
):
    target = LocalTarget(tmp_path)
    tables = target.iceberg()
    first, _ = publish(tables, 2024, 3)
    second, _ = publish(tables, 2024, 4)
    other, _ = publish(tables, 2025, 2)
    current, _ = publish(tables, 2024, 5)
    when_other = next(e.committed_at for e in tables.history(tables.table(TABLE)) if e.snapshot_id == other)
    index = tables.index
    assert index is not None and index.snapshot_ids(target.database, TABLE) == {first, second, other, current}
    index.record("another_database", TABLE, first, ["s3://elsewhere/a.parquet"])

    (upkeep,) = keep_tables(tables, 90, LOG, now=utc_now() + timedelta(days=200))

    assert upkeep.expired == sorted([first, second]) and upkeep.index_rows_dropped == 2
    assert "2 snapshot index rows dropped" in upkeep.line()
    assert index.snapshot_ids(target.database, TABLE) == {other, current}
    assert index.snapshot_ids("another_database", TABLE) == {first}, "only this database's table is pruned"

    def opened() -> IcebergTables:
        raise AssertionError("pyiceberg opened: the index lost a snapshot the table keeps")

    plans = indexed_plans(target, opened)
    (plan,) = plans.read_plan(TimeTravel(as_of=when_other))[0].values()
    as_of_other = plan.paths
    assert sorted(Path(path).parent.name for path in as_of_other) == ["year=2024", "year=2025"]
    for travel in (TimeTravel(), TimeTravel(as_of=when_other), TimeTravel(snapshot_id=other)):
        assert plans.read_plan(travel) == tables.read_plan(travel), travel

    # Rows of snapshots expired before housekeeping pruned the index go the next time, expiry or not.
    index.record(target.database, TABLE, 42, ["an expired snapshot's file"])
    (upkeep,) = keep_tables(tables, 90, LOG)
    assert upkeep.expired == [] and upkeep.index_rows_dropped == 1
    assert index.snapshot_ids(target.database, TABLE) == {other, current}
