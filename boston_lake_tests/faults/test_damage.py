"""A damaged year, a damaged or busy catalog, a lake nobody may write: readers get answers or one clear line,
and a normal run repairs what it finds damaged."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.catalog.crawler import Crawler
from boston_lake.lake.catalog.local import LocalCatalog
from boston_lake.lake.tables import DATABASE
from boston_lake.lake.targets import LocalTarget
from boston_lake.lake.zones.silver.duckdb_build import SilverZone
from boston_lake_tests.faults.conftest import LOG, Lake, boston_lake, one_line
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.support.portal import TestPortal

# Each scenario damages a lake built by the real pipeline and asks the CLI about it: `make test` runs them.
pytestmark = pytest.mark.slow

YEARS = (2013, 2022, 2023)
COUNT_2013 = "SELECT count(*) AS n FROM boston311.legacy_requests WHERE year = '2013'"


def crawl(lake: Lake) -> Crawler:
    crawler = Crawler(lake.store, LocalCatalog(lake.home / "catalog" / "catalog.sqlite"), DATABASE)
    crawler.crawl([("legacy_requests", layout.bronze_table_prefix("legacy_requests"))])
    return crawler


def populate(lake: Lake) -> Lake:
    """2013 (700 rows), 2022 (100) and 2023 (700) in raw, bronze and the catalog."""
    for year in YEARS:
        lake.ingest(year)
    crawl(lake)
    return lake


@pytest.fixture
def populated(lake: Lake) -> Lake:
    return populate(lake)


def corrupt(path: Path, *, truncate: bool) -> None:
    data = bytearray(path.read_bytes())
    if truncate:
        path.write_bytes(data[: len(data) // 2])
        return
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # same size, footer intact
    path.write_bytes(bytes(data))


@fault(
    "bronze",
    "a bronze year cut short (truncated Parquet)",
    "`status` names the file and the repair; other years still query; a query of that year names the file; "
    "the crawl registers the others; a normal run rebuilds it",
)
def test_truncated_bronze_year(populated: Lake) -> None:
    lake = populated
    damaged = lake.bronze_key(2023)
    corrupt(damaged, truncate=True)

    status = boston_lake("status", home=lake.home)
    assert status.returncode == 1 and "Traceback" not in status.stderr
    assert f"legacy_requests 2023: damaged: {damaged}" in status.stdout
    assert (
        "repair: dagster asset materialize -m boston_lake.definitions --select bronze/legacy_requests" in status.stdout
    )

    one_year = boston_lake("query", COUNT_2013, "--format", "csv", home=lake.home)
    assert one_year.returncode == 0, one_year.stderr
    assert one_year.stdout.splitlines() == ['"n"', "700"]
    everything = boston_lake("query", "SELECT count(*) FROM boston311.legacy_requests", home=lake.home)
    assert everything.returncode == 1 and "Traceback" not in everything.stderr
    assert "legacy_requests year=2023: damaged (" in everything.stderr and str(damaged) in everything.stderr

    crawled = crawl(lake).crawl([("legacy_requests", layout.bronze_table_prefix("legacy_requests"))])
    assert list(crawled.table("legacy_requests").damaged) == [("2023",)]

    repaired = lake.ingest(2023)  # no force
    assert repaired.changed and repaired.reason.startswith(f"repaired: {damaged}")
    assert lake.rows_lost(lake.portal.file_for("e6013a93-1321-4f2a-bf91-8d8a02f1e62f").read_bytes(), 2023) == 0
    assert boston_lake("status", home=lake.home).returncode == 0


@fault(
    "bronze",
    "a bronze year overwritten in place (same size, footer intact)",
    "found by its bronze manifest (not the object its build published); a normal run rebuilds it",
)
def test_overwritten_bronze_year(populated: Lake) -> None:
    lake = populated
    corrupt(lake.bronze_key(2022), truncate=False)
    status = boston_lake("status", home=lake.home)
    assert "legacy_requests 2022: damaged: " in status.stdout and "not the object its build published" in status.stdout
    repaired = lake.ingest(2022)
    assert repaired.changed and "not the object its build published" in repaired.reason
    assert lake.rows_lost(lake.served()) == 0


@fault("bronze", "a bronze year deleted", "`status` says it is missing; a normal run rebuilds it")
def test_deleted_bronze_year(populated: Lake) -> None:
    lake = populated
    lake.bronze_key(2022).unlink()
    status = boston_lake("status", home=lake.home)
    assert f"legacy_requests 2022: damaged: {lake.bronze_key(2022)} is missing" in status.stdout
    assert lake.ingest(2022).changed
    assert lake.rows_lost(lake.served()) == 0


@fault("catalog", "catalog file corrupt", "`catalog` and `query` answer one line naming the file", rows_lost="n/a")
def test_corrupt_catalog(populated: Lake) -> None:
    catalog = populated.home / "catalog" / "catalog.sqlite"
    for suffix in ("-wal", "-shm"):
        catalog.with_name(catalog.name + suffix).unlink(missing_ok=True)
    catalog.write_bytes(b"this is not a database" * 100)
    listing = one_line(boston_lake("catalog", home=populated.home))
    assert str(catalog) in listing and "file is not a database" in listing
    query = boston_lake("query", COUNT_2013, home=populated.home)
    assert query.returncode == 1 and "Traceback" not in query.stderr and str(catalog) in query.stderr


@fault(
    "catalog",
    "catalog locked by a writer mid-transaction",
    "`query` and `catalog` answer at once from the last committed state",
    rows_lost="n/a",
)
def test_locked_catalog(populated: Lake) -> None:
    writer = sqlite3.connect(populated.home / "catalog" / "catalog.sqlite", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM partitions")  # uncommitted: readers must still see every year
        query = boston_lake("query", COUNT_2013, "--format", "csv", home=populated.home)
        assert query.returncode == 0, query.stderr
        assert query.stdout.splitlines() == ['"n"', "700"]
        listing = boston_lake("catalog", home=populated.home)
        assert listing.returncode == 0, listing.stderr
        assert "table legacy_requests" in listing.stdout
    finally:
        writer.execute("ROLLBACK")
        writer.close()


@pytest.fixture
def read_only_lake(portal: TestPortal) -> Iterator[Path]:
    """A populated lake that every user may read and nobody may write (the catalog's Locations are absolute
    paths, so the lake is built where it is then frozen, not copied elsewhere)."""
    base = Path(tempfile.mkdtemp(prefix="boston_lake_ro_"))
    base.chmod(0o755)
    home = populate(Lake(base / "home", portal)).home
    shutil.rmtree(home / ".staging")
    for folder, _, files in os.walk(home):
        for name in files:
            (Path(folder) / name).chmod(0o444)
    for folder, _, _ in sorted(os.walk(home), reverse=True):
        Path(folder).chmod(0o555)
    try:
        yield home
    finally:
        for folder, _, _ in os.walk(home):
            Path(folder).chmod(0o755)
        shutil.rmtree(base)


@fault(
    "catalog",
    "a populated lake nobody may write (read-only folders, a user without root)",
    "`query`, `catalog` and `status` work on it unchanged",
    rows_lost="n/a",
)
def test_read_only_lake(read_only_lake: Path) -> None:
    before = sorted((path, path.stat().st_mtime_ns) for path in read_only_lake.rglob("*"))
    query = boston_lake(
        "query",
        "SELECT year, count(*) AS n FROM boston311.legacy_requests GROUP BY year ORDER BY year",
        "--format",
        "csv",
        home=read_only_lake,
        user="nobody",
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines() == ['"year","n"', '"2013",700', '"2022",100', '"2023",700']
    listing = boston_lake("catalog", home=read_only_lake, user="nobody")
    assert listing.returncode == 0 and "table legacy_requests" in listing.stdout, listing.stderr
    status = boston_lake("status", home=read_only_lake, user="nobody")
    assert status.returncode == 0 and "DAMAGED" not in status.stdout, status.stdout + status.stderr
    assert sorted((path, path.stat().st_mtime_ns) for path in read_only_lake.rglob("*")) == before


@fault(
    "query",
    "`query` asked to write or to read outside the lake",
    "refused in one line; nothing written",
    rows_lost="n/a",
)
def test_query_only_reads_the_lake(populated: Lake) -> None:
    home = populated.home
    # DuckDB's own temp folder (.tmp of the current folder, where the command runs) is no way out either.
    (home.parent / ".tmp").mkdir(exist_ok=True)
    (home.parent / ".tmp" / "secret.csv").write_text("a\n1\n")
    for sql, refusal in [
        ("INSTALL httpfs", "refuses INSTALL"),
        (
            "SELECT * FROM read_csv('.tmp/secret.csv')",
            'reads the lake and nothing else: Permission Error: Cannot access file ".tmp/secret.csv"',
        ),
        (
            f"COPY (SELECT 1) TO '{home}/bronze/x.csv'",
            "read-only: it runs SELECT statements over the lake and refuses COPY",
        ),
        (f"ATTACH '{home}/x.duckdb'", "refuses ATTACH"),
        ("CREATE TABLE t AS SELECT 1", "refuses CREATE"),
        (
            "SELECT * FROM read_csv('/etc/passwd')",
            'reads the lake and nothing else: Permission Error: Cannot access file "/etc/passwd"',
        ),
    ]:
        result = boston_lake("query", sql, home=home)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert refusal in result.stderr.splitlines()[0], result.stderr
    assert not (home / "bronze" / "x.csv").exists() and not (home / "x.duckdb").exists()


@fault("catalog", "no catalog yet (nothing crawled)", "`catalog` and `query` say so in one line", rows_lost="n/a")
def test_missing_catalog(lake: Lake) -> None:
    lake.home.mkdir()
    for command in (["catalog"], ["query", COUNT_2013]):
        line = boston_lake(*command, home=lake.home)
        assert line.returncode == 1 and "Traceback" not in line.stderr
        assert f"no catalog at {lake.home / 'catalog' / 'catalog.sqlite'}: nothing has been crawled" in line.stderr


@fault(
    "bronze",
    "a bronze year replaced by another file that carries its footer entries, silver built from it, then repaired",
    "the repair is a new bronze input by content: the next silver build reads the repaired year",
)
def test_a_repaired_bronze_year_rebuilds_silver(lake: Lake) -> None:
    lake.ingest(2022)
    bronze = lake.bronze_key(2022)
    whole = pq.read_table(bronze)
    titles = whole.schema.get_field_index("case_title")
    tampered = whole.set_column(titles, "case_title", pa.array(["tampered"] * whole.num_rows))
    pq.write_table(tampered.replace_schema_metadata(whole.schema.metadata), bronze)  # same rows, same footer entries
    silver = SilverZone(LocalTarget(lake.home).iceberg(), LOG)
    built = silver.build(2022)
    assert built.changed  # built from what bronze held then
    titles = pq.read_table(lake.home / built.key, columns=["case_title"])["case_title"]
    assert set(titles.to_pylist()) == {"tampered"}

    repaired = lake.ingest(2022)
    assert repaired.changed and repaired.reason.startswith(f"repaired: {bronze} is not the object its build published")
    rebuilt = silver.build(2022)
    assert rebuilt.changed and rebuilt.summary.rows == 100
    assert "tampered" not in pq.read_table(lake.home / rebuilt.key, columns=["case_title"])["case_title"].to_pylist()
    assert lake.rows_lost(lake.served()) == 0
