"""Silver's and gold's Iceberg tables through pyiceberg: one commit per year, history, time travel, rollback; on the
embedded target's SQL catalog and on the Glue Data Catalog and S3 of the moto server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boston_lake.lake.catalog.iceberg import IcebergError, IcebergTables, TimeTravel
from boston_lake.lake.catalog.iceberg_plans import IndexedPlans, SnapshotFiles
from boston_lake.lake.settings import Settings
from boston_lake.lake.targets import AwsTarget, LocalTarget

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
    (columns, paths) = tables.read_plan(travel or TimeTravel())[0][TABLE]
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
    ((_, paths),) = plans.read_plan(TimeTravel())[0].values()
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


def indexed_plans(target: LocalTarget, tables: Callable[[], IcebergTables]) -> IndexedPlans:
    catalog = target.home / "catalog"
    return IndexedPlans(
        catalog / "iceberg.sqlite",
        "boston_lake",
        target.lake_zone(),
        target.database,
        SnapshotFiles(catalog / "iceberg_files.sqlite"),
        tables,
    )
