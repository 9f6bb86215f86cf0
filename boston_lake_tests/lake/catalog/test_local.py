from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from boston_lake.lake.catalog import CatalogError, CrawlerRunning
from boston_lake.lake.catalog.local import LocalCatalog

DB = "boston311"


def table_input(name: str = "legacy_requests", columns: tuple[str, ...] = ("case_enquiry_id",)) -> dict:
    return {
        "Name": name,
        "StorageDescriptor": {
            "Columns": [{"Name": column, "Type": "bigint"} for column in columns],
            "Location": f"/lake/bronze/boston311/{name}/",
        },
        "PartitionKeys": [{"Name": "year", "Type": "string"}],
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet"},
    }


def partition_input(year: str, rows: int = 1) -> dict:
    return {
        "Values": [year],
        "StorageDescriptor": {
            "Columns": [{"Name": "case_enquiry_id", "Type": "bigint"}],
            "Location": f"/lake/bronze/boston311/legacy_requests/year={year}/",
        },
        "Parameters": {"recordCount": str(rows)},
    }


@pytest.fixture
def catalog(tmp_path: Path) -> LocalCatalog:
    catalog = LocalCatalog(tmp_path / "catalog" / "catalog.sqlite")
    catalog.create_database(DB)
    return catalog


def test_everything_survives_a_new_instance(catalog: LocalCatalog) -> None:
    catalog.create_table(DB, table_input())
    catalog.batch_create_partitions(DB, "legacy_requests", [partition_input("2013")])
    catalog.update_table(DB, table_input(columns=("case_enquiry_id", "open_dt")))

    reopened = LocalCatalog(catalog.path)

    assert [database["Name"] for database in reopened.list_databases()] == [DB]
    assert reopened.get_table(DB, "legacy_requests") == catalog.get_table(DB, "legacy_requests")
    assert [version["VersionId"] for version in reopened.get_table_versions(DB, "legacy_requests")] == ["2", "1"]
    assert [p["Values"] for p in reopened.get_partitions(DB, "legacy_requests")] == [["2013"]]


def test_the_file_is_in_wal_mode_so_readers_are_not_blocked_by_a_writer(catalog: LocalCatalog) -> None:
    catalog.create_table(DB, table_input())
    writer = sqlite3.connect(catalog.path, isolation_level=None)
    try:
        assert writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM partitions")
        assert catalog.get_table(DB, "legacy_requests")["Name"] == "legacy_requests"
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_get_table_returns_glue_shapes(catalog: LocalCatalog) -> None:
    before = datetime.now(UTC)
    catalog.create_table(DB, table_input())

    table = catalog.get_table(DB, "legacy_requests")

    assert table["DatabaseName"] == DB
    assert table["VersionId"] == "1"
    assert before <= table["CreateTime"] == table["UpdateTime"] <= datetime.now(UTC)
    assert table["StorageDescriptor"] == table_input()["StorageDescriptor"]
    assert table["PartitionKeys"] == [{"Name": "year", "Type": "string"}]
    assert [t["Name"] for t in catalog.list_tables(DB)] == ["legacy_requests"]


def test_names_are_lower_case_as_in_glue(catalog: LocalCatalog) -> None:
    catalog.create_table("BOSTON311", table_input("Legacy_Requests"))

    assert catalog.get_table(DB, "legacy_requests")["Name"] == "legacy_requests"
    assert catalog.get_table(DB, "LEGACY_REQUESTS") is not None


def test_datetimes_in_the_input_come_back_as_datetimes(catalog: LocalCatalog) -> None:
    accessed = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    catalog.create_table(DB, {**table_input(), "LastAccessTime": accessed})

    assert catalog.get_table(DB, "legacy_requests")["LastAccessTime"] == accessed


def test_bad_table_inputs_are_refused(catalog: LocalCatalog) -> None:
    with pytest.raises(CatalogError, match="table name ''"):
        catalog.create_table(DB, {**table_input(), "Name": ""})
    with pytest.raises(CatalogError, match=r"keys \['VersionId'\]"):
        catalog.create_table(DB, {**table_input(), "VersionId": "7"})


def test_every_update_archives_a_version_newest_first(catalog: LocalCatalog) -> None:
    catalog.create_table(DB, table_input(columns=("a",)))
    catalog.update_table(DB, table_input(columns=("a", "b")))
    catalog.update_table(DB, table_input(columns=("a", "b", "c")))

    versions = catalog.get_table_versions(DB, "legacy_requests")
    current = catalog.get_table(DB, "legacy_requests")

    assert [version["VersionId"] for version in versions] == ["3", "2", "1"]
    assert [version["Table"]["VersionId"] for version in versions] == ["3", "2", "1"]
    assert versions[0]["Table"] == current
    assert [[c["Name"] for c in v["Table"]["StorageDescriptor"]["Columns"]] for v in versions] == [
        ["a", "b", "c"],
        ["a", "b"],
        ["a"],
    ]
    assert {version["Table"]["CreateTime"] for version in versions} == {current["CreateTime"]}
    assert current["UpdateTime"] >= versions[1]["Table"]["UpdateTime"] >= current["CreateTime"]


def test_partitions_come_back_as_glue_partitions_filtered_by_year(catalog: LocalCatalog) -> None:
    catalog.create_table(DB, table_input())
    catalog.batch_create_partitions(DB, "legacy_requests", [partition_input(y) for y in ("2023", "2013", "2022")])

    everything = catalog.get_partitions(DB, "legacy_requests")
    chosen = catalog.get_partitions(DB, "legacy_requests", years=["2013", "2023", "1999"])

    assert [p["Values"] for p in everything] == [["2013"], ["2022"], ["2023"]]
    assert [p["Values"] for p in chosen] == [["2013"], ["2023"]]
    assert catalog.get_partitions(DB, "legacy_requests", years=[]) == []
    first = everything[0]
    assert (first["DatabaseName"], first["TableName"]) == (DB, "legacy_requests")
    assert isinstance(first["CreationTime"], datetime)
    assert first["StorageDescriptor"] == partition_input("2013")["StorageDescriptor"]
    assert first["Parameters"] == {"recordCount": "1"}


def test_batch_update_replaces_partitions_and_keeps_their_creation_time(catalog: LocalCatalog) -> None:
    catalog.create_table(DB, table_input())
    catalog.batch_create_partitions(DB, "legacy_requests", [partition_input("2013"), partition_input("2022")])
    (created,) = catalog.get_partitions(DB, "legacy_requests", ["2013"])

    catalog.batch_update_partitions(DB, "legacy_requests", [partition_input("2013", rows=700)])

    (updated,) = catalog.get_partitions(DB, "legacy_requests", ["2013"])
    assert updated["Parameters"] == {"recordCount": "700"}
    assert updated["CreationTime"] == created["CreationTime"]


def test_partition_batches_are_checked_like_glue_checks_them(catalog: LocalCatalog) -> None:
    catalog.create_table(DB, table_input())

    with pytest.raises(CatalogError, match=r"do not match its partition keys \['year'\]"):
        catalog.batch_create_partitions(DB, "legacy_requests", [{**partition_input("2013"), "Values": ["2013", "01"]}])
    with pytest.raises(CatalogError, match="more than once"):
        catalog.batch_create_partitions(DB, "legacy_requests", [partition_input("2013"), partition_input("2013")])
    with pytest.raises(CatalogError, match="list of strings"):
        catalog.batch_create_partitions(DB, "legacy_requests", [{**partition_input("2013"), "Values": [2013]}])
    assert catalog.get_partitions(DB, "legacy_requests") == []


def test_a_file_that_is_not_a_catalog_is_named(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)

    with pytest.raises(CatalogError, match=str(path)):
        LocalCatalog(path)


def test_crawl_lock_refuses_a_second_holder_and_names_the_first(catalog: LocalCatalog) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with catalog.crawl_lock("first_crawler"):
            holding.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(timeout=30)
        with pytest.raises(CrawlerRunning, match="cannot start crawler 'second'.*first_crawler"):
            with LocalCatalog(catalog.path).crawl_lock("second"):
                pass
    finally:
        release.set()
        holder.join()
    with catalog.crawl_lock("second"):
        pass


def test_crawl_lock_holds_across_processes(catalog: LocalCatalog) -> None:
    script = (
        "import sys\n"
        "from boston_lake.lake.catalog.local import LocalCatalog\n"
        f"with LocalCatalog({str(catalog.path)!r}).crawl_lock('other_process'):\n"
        "    print('locked', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert other.stdout.readline().strip() == "locked"
        with pytest.raises(CrawlerRunning, match="other_process"):
            with catalog.crawl_lock("here"):
                pass
    finally:
        other.stdin.close()
        other.wait(timeout=30)
    with catalog.crawl_lock("here"):
        pass
