"""Silver's and gold's Iceberg tables through pyiceberg: one commit per year, history, time travel, rollback; on the
embedded target's SQL catalog and on the Glue Data Catalog and S3 of the moto server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boston_lake.lake.catalog.iceberg import IcebergError, IcebergTables, TimeTravel
from boston_lake.lake.catalog.iceberg_plans import SnapshotFiles
from boston_lake.lake.settings import Settings
from boston_lake.lake.targets import AwsTarget, LocalTarget
from boston_lake_tests.support.indexed_plans import indexed_plans

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

ZONE, TABLE = "silver", "service_requests"


def year_rows(year: int, cases: int, title: str) -> pa.Table:
    return pa.table(
        {
            "case_id": pa.array([f"{year}-{n}" for n in range(cases)]),
            "case_title": pa.array([title] * cases),
            "year": pa.array([year] * cases, pa.int32()),
        }
    )


def publish(tables: IcebergTables, rows: pa.Table, year: int, run_id: str) -> int:
    """Write `rows` as a new data file of the year and commit it; returns the snapshot id."""
    key = tables.data_key(ZONE, TABLE, year)
    with tables.store.scratch_file(".parquet") as written:
        pq.write_table(rows, written)
        tables.store.publish(written, key)
    table = tables.open(ZONE, TABLE, rows.schema, "test cases")
    return tables.replace_year(table, year, key, rows.num_rows, f"fingerprint of {run_id}", run_id).snapshot_id


def titles(tables: IcebergTables, year: int, travel: TimeTravel | None = None) -> list[str]:
    paths = tables.read_plan(travel or TimeTravel())[0][TABLE].paths
    read = [pq.read_table(path, filesystem=tables.store.arrow_filesystem()[0]) for path in _paths(tables, paths)]
    return sorted(
        title
        for part in read
        for title, row_year in zip(part["case_title"].to_pylist(), part["year"].to_pylist(), strict=True)
        if row_year == year
    )


def _paths(tables: IcebergTables, paths: list[str]) -> list[str]:
    """pyarrow's S3 filesystem names objects without the scheme."""
    return [path.removeprefix("s3://") for path in paths]


def exercise(tables: IcebergTables) -> None:
    """Two years, one republished: each commit replaces only its year; reading at the first snapshot, and rolling
    back to it, gives the year as first published."""
    first = publish(tables, year_rows(2024, 3, "first"), 2024, "run-1")
    publish(tables, year_rows(2025, 2, "other year"), 2025, "run-2")
    publish(tables, year_rows(2024, 4, "second"), 2024, "run-3")

    assert titles(tables, 2024) == ["second"] * 4 and titles(tables, 2025) == ["other year"] * 2
    assert titles(tables, 2024, TimeTravel(snapshot_id=first)) == ["first"] * 3
    table = tables.table(TABLE)
    assert [(e.year, e.rows, e.run_id) for e in tables.history(table)] == [
        ("2024", "3", "run-1"),
        ("2025", "2", "run-2"),
        ("2024", "4", "run-3"),
    ]
    assert [Path(f.file_path).parent.name for f in tables.files(table, year=2024)] == ["year=2024"]

    restored = tables.rollback(table, first, "bad republish", by="tester")
    assert titles(tables, 2024) == ["first"] * 3 and titles(tables, 2025) == []  # the table as it was at `first`
    assert tables.history(tables.table(TABLE))[-1].note == f"rollback to {first} by tester: bad republish"
    assert restored.snapshot_id == tables.table(TABLE).current_snapshot().snapshot_id
    with pytest.raises(IcebergError, match=r"boston311.service_requests has no snapshot 42"):
        tables.rollback(tables.table(TABLE), 42, "no such")
    with pytest.raises(IcebergError, match=r"say why"):
        tables.rollback(tables.table(TABLE), first, " ")


def test_the_embedded_target_keeps_the_tables_in_a_sql_catalog_inside_the_lake(tmp_path: Path) -> None:
    tables = LocalTarget(tmp_path).iceberg()
    exercise(tables)
    assert (tmp_path / "catalog" / "iceberg.sqlite").is_file()
    assert list((tmp_path / ZONE / "boston311" / TABLE / "metadata").glob("*.metadata.json"))


@pytest.mark.slow
def test_on_aws_the_glue_table_is_an_iceberg_table_whose_metadata_is_in_the_lake_bucket(
    aws_env, aws_buckets, aws_client, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {
            "BOSTON_LAKE_TARGET": "aws",
            "BOSTON_LAKE_RAW_BUCKET": aws_buckets.raw,
            "BOSTON_LAKE_LAKE_BUCKET": aws_buckets.lake,
            "BOSTON_LAKE_CODE_BUCKET": aws_buckets.code,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": aws_env.url,
        }
    )
    assert settings.aws is not None
    tables = AwsTarget(settings.aws).iceberg()
    exercise(tables)

    glue = aws_client("glue").get_table(DatabaseName="boston311", Name=TABLE)["Table"]
    assert glue["Parameters"]["table_type"] == "ICEBERG"
    location = glue["Parameters"]["metadata_location"]
    assert location.startswith(f"s3://{aws_buckets.lake}/{ZONE}/boston311/{TABLE}/metadata/")
    bucket, key = location.removeprefix("s3://").split("/", 1)
    assert aws_client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    assert glue["StorageDescriptor"]["Location"] == f"s3://{aws_buckets.lake}/{ZONE}/boston311/{TABLE}"


def test_readers_plan_from_the_snapshot_index_without_pyiceberg_in_every_state_pyiceberg_gives(
    tmp_path: Path,
) -> None:
    """Each commit records its snapshot's files: the query engine's plans (current, as of a time, at a snapshot)
    equal pyiceberg's without opening pyiceberg, and a new commit or a rollback is seen at once."""
    target = LocalTarget(tmp_path)
    tables = target.iceberg()
    before_any = datetime.now(UTC) - timedelta(days=1)
    first = publish(tables, year_rows(2024, 3, "first"), 2024, "run-1")
    between = tables.history(tables.table(TABLE))[0].committed_at
    publish(tables, year_rows(2025, 2, "other year"), 2025, "run-2")

    def opened() -> IcebergTables:
        raise AssertionError("pyiceberg opened though the index holds every snapshot asked for")

    plans = indexed_plans(target, opened)
    travels = [TimeTravel(), TimeTravel(as_of=between), TimeTravel(as_of=before_any), TimeTravel(snapshot_id=first)]
    for travel in travels:
        assert plans.read_plan(travel) == tables.read_plan(travel), travel
    assert plans.read_plan(TimeTravel(), [TABLE, "bronze_table"]) == tables.read_plan(TimeTravel())
    with pytest.raises(IcebergError, match=r"no Iceberg table of boston311 has a snapshot 42"):
        plans.read_plan(TimeTravel(snapshot_id=42))

    tables.rollback(tables.table(TABLE), first, "2025 was wrong")
    (plan,) = plans.read_plan(TimeTravel())[0].values()
    paths = plan.paths
    assert [Path(path).parent.name for path in paths] == ["year=2024"]


def test_a_snapshot_the_index_lacks_is_planned_through_pyiceberg(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path)
    tables = target.iceberg()
    publish(tables, year_rows(2024, 3, "first"), 2024, "run-1")
    (tmp_path / "catalog" / "iceberg_files.sqlite").unlink()  # as a lake committed to by an older version
    opened: list[IcebergTables] = []

    def reader() -> IcebergTables:
        opened.append(tables)
        return tables

    assert indexed_plans(target, reader).read_plan(TimeTravel()) == tables.read_plan(TimeTravel())
    assert opened


def test_each_commit_records_the_files_its_snapshot_holds_as_pyiceberg_reads_them(tmp_path: Path) -> None:
    """A commit knows its snapshot's files from its parent's and its change, without reading the manifests again;
    they must be the files the snapshot's manifests name: after new years, a republished year, a year with a new
    column, rollbacks, a commit pyiceberg redid itself on the snapshot another writer committed meanwhile (a
    rollback that only took a year out), and one redone here after another writer added a year."""
    target = LocalTarget(tmp_path)
    tables, other_writer = target.iceberg(), target.iceberg()
    first = publish(tables, year_rows(2024, 3, "first"), 2024, "run-1")
    publish(tables, year_rows(2025, 2, "other year"), 2025, "run-2")
    before_wider = publish(tables, year_rows(2024, 4, "second"), 2024, "run-3")
    publish(tables, year_rows(2023, 1, "wider").append_column("channel", pa.array(["phone"])), 2023, "run-4")

    stale = other_writer.table(TABLE)
    taken_out = tables.rollback(tables.table(TABLE), before_wider, "2023 came too early", by="tester")
    pyiceberg_redone = write_year(other_writer, stale, 2026, "late")
    assert pyiceberg_redone.parent_snapshot_id == taken_out.snapshot_id

    stale = tables.table(TABLE)
    stale_id = stale.current_snapshot().snapshot_id
    fifth = publish(other_writer, year_rows(2025, 5, "third"), 2025, "run-5")
    redone_here = write_year(tables, stale, 2022, "early")
    assert redone_here.parent_snapshot_id == fifth != stale_id
    tables.rollback(tables.table(TABLE), first, "back to the start", by="tester")

    fresh = target.iceberg()  # committed nothing: reads every snapshot's manifests
    table = fresh.table(TABLE)
    snapshots = {snapshot.snapshot_id: snapshot for snapshot in table.snapshots()}
    assert len(snapshots) == 9
    index = SnapshotFiles(tmp_path / "catalog" / "iceberg_files.sqlite")
    for snapshot_id, snapshot in snapshots.items():
        read = fresh.files(table, snapshot)
        assert sorted(index.files(target.database, {TABLE: snapshot_id})[TABLE]) == sorted(f.file_path for f in read)
        for writer in (tables, other_writer):
            assert {
                (f.file_path, f.partition[0], f.record_count, f.spec_id) for f in writer.files(table, snapshot)
            } == {(f.file_path, f.partition[0], f.record_count, f.spec_id) for f in read}
    assert titles(fresh, 2024) == ["first"] * 3 and titles(fresh, 2022) == []


def write_year(tables: IcebergTables, table: Table, year: int, title: str) -> Snapshot:
    """One row of `year` committed on `table` as this writer last loaded it."""
    key = tables.data_key(ZONE, TABLE, year)
    with tables.store.scratch_file(".parquet") as written:
        pq.write_table(year_rows(year, 1, title), written)
        tables.store.publish(written, key)
    return tables.replace_year(table, year, key, 1, f"fingerprint of {title}", f"run {title}")


def test_a_moved_lake_is_named_unreadable_as_pyiceberg_names_it(tmp_path: Path) -> None:
    tables = LocalTarget(tmp_path / "old").iceberg()
    publish(tables, year_rows(2024, 3, "first"), 2024, "run-1")
    (tmp_path / "old").rename(tmp_path / "new")
    target = LocalTarget(tmp_path / "new")

    def reader() -> IcebergTables:
        opened = target.iceberg_reader()
        assert opened is not None
        return opened

    plans, unreadable = indexed_plans(target, reader).read_plan(TimeTravel())
    assert plans == {} and "the lake was copied or moved" in unreadable[TABLE]


def test_a_reader_unifies_the_files_columns_only_once_the_schema_has_changed(tmp_path: Path) -> None:
    """A table of one schema is read without unifying its files by column name (one footer read to bind, not
    every file's); once a year brings a new column, the older files read it as NULL, now and as of before."""
    target = LocalTarget(tmp_path)
    tables = target.iceberg()
    publish(tables, year_rows(2024, 2, "first"), 2024, "run-1")
    first = publish(tables, year_rows(2025, 1, "second"), 2025, "run-2")
    [plan] = indexed_plans(target, lambda: tables).read_plan(TimeTravel())[0].values()
    assert plan.one_schema
    sql = f"SELECT year, case_title FROM {target.database}.{TABLE} ORDER BY year"
    with target.query_engine() as engine:
        assert engine.query(sql).to_pylist() == [
            {"year": 2024, "case_title": "first"},
            {"year": 2024, "case_title": "first"},
            {"year": 2025, "case_title": "second"},
        ]

    publish(tables, year_rows(2026, 1, "wider").append_column("channel", pa.array(["phone"])), 2026, "run-3")
    for travel in (TimeTravel(), TimeTravel(snapshot_id=first)):
        [plan] = indexed_plans(target, lambda: tables).read_plan(travel)[0].values()
        assert not plan.one_schema, travel
    with target.query_engine() as engine:
        channels = engine.query(f"SELECT year, channel FROM {target.database}.{TABLE} ORDER BY year").to_pylist()
    assert [row["channel"] for row in channels] == [None, None, None, "phone"]
