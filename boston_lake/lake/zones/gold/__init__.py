"""Gold tables: answers to the questions people keep asking, built from one silver year by SQL kept here.

Each table is one SQL file over a view named `silver` (one year of `silver/service_requests`), run by DuckDB
in-process on both targets: a silver year is tens of MB and its answer a few thousand rows, so reading it
through the object store (a local folder, or S3 downloaded to a scratch file) costs seconds, where a Glue
job would bill a minute of two DPU per year and Athena CTAS cannot replace one partition in place. The year
is published as one Parquet object through the partition protocol (lake/zones/publish.py), so readers see the old
year or the new one, as with bronze, and a year whose silver objects (by their content) and SQL are unchanged is
not built again (its footer records their fingerprint).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from boston_lake.lake import layout
from boston_lake.lake.catalog.scan import data_objects
from boston_lake.lake.duck import connect, sql_literal
from boston_lake.lake.errors import LakeError
from boston_lake.lake.log import Log
from boston_lake.lake.settings import DUCKDB_MEMORY_LIMIT
from boston_lake.lake.stores import ObjectStore, StoredObject, Workspace
from boston_lake.lake.zones.publish import (
    AcceptedShrink,
    PartitionBuild,
    Staged,
    footer_metadata,
    object_sha256,
    open_parquet,
    publish_partition,
)
from boston_lake.lake.zones.silver.model import SILVER_TABLE, SILVER_ZONE

GOLD_ZONE = "gold"
META_PREFIX = "boston_lake.gold."
LOG = logging.getLogger(__name__)


class GoldError(LakeError, RuntimeError):
    """A gold year could not be built; the message names the silver files or the SQL at fault."""


@dataclass(frozen=True)
class GoldTable:
    name: str
    sql_file: str
    description: str
    columns: tuple[tuple[str, str], ...]  # (name, what it holds) of every column the SQL writes, and the year

    @property
    def sql(self) -> str:
        return resources.files(__package__).joinpath(self.sql_file).read_text(encoding="utf-8")


SERVICE_LEVELS = GoldTable(
    "service_levels",
    "service_levels.sql",
    "Per month (local) x source system x neighborhood x case type x department, and per year by neighborhood "
    "and by department (column grain): cases opened, closed, still open, median and p90 hours to close, "
    "on-time share.",
    (
        (
            "grain",
            "which rows these are: 'month' (the detail), 'year_neighborhood' or 'year_department'; sum counts "
            "within one grain only",
        ),
        ("month", "first day of the month the cases were opened, Boston local time; null at the year grains"),
        ("source_system", "legacy | new_system: the CRM that recorded the cases; null at the year grains"),
        (
            "neighborhood",
            "neighborhood of the cases; null at the year_department grain, or where the source left it blank",
        ),
        ("case_type", "request type (silver case_type); null at the year grains, or where the source left it blank"),
        (
            "department",
            "department of the cases; null at the year_neighborhood grain, or where the source left it blank",
        ),
        ("opened", "cases opened in this group"),
        ("closed", "of those, cases closed by the time silver was built"),
        ("still_open", "of those, cases not closed when silver was built"),
        (
            "median_hours_to_close",
            "median hours from opening to closing of the closed cases (a close before the open left out)",
        ),
        ("p90_hours_to_close", "90th percentile of the hours from opening to closing of the closed cases"),
        ("with_on_time", "cases whose source says ONTIME or OVERDUE (silver on_time not null)"),
        ("on_time", "cases the source marks ONTIME against their service-level target (silver on_time true): a count"),
        ("on_time_share", "on_time / with_on_time; null where no case has an on-time verdict"),
        ("closed_before_opened", "cases whose close time is before their open time (a source error)"),
        ("year", "partition key: the silver year, the year of the open time in Boston local time, as text"),
    ),
)
INTAKE = GoldTable(
    "intake",
    "intake.sql",
    "Cases opened per local day, weekday and hour of day and channel: the shape of demand.",
    (
        ("opened_date", "the day the cases were opened, Boston local time"),
        ("weekday", "ISO weekday of opened_date: 1 = Monday ... 7 = Sunday"),
        ("hour", "hour of the day the cases were opened, Boston local time (0-23)"),
        ("channel", "how the cases came in (silver channel); null where the source left it blank"),
        ("cases_opened", "cases opened in this day, hour and channel"),
        ("year", "partition key: the silver year, the year of the open time in Boston local time, as text"),
    ),
)
GOLD_TABLES = (SERVICE_LEVELS, INTAKE)


@dataclass(frozen=True)
class GoldPartition:
    table: str
    year: int
    key: str
    rows: int
    silver_rows: int
    silver_files: tuple[str, ...]
    schema: pa.Schema
    changed: bool = True
    reason: str = "new silver year or SQL"


def silver_partition_prefix(year: int) -> str:
    return layout.partition_prefix(SILVER_ZONE, SILVER_TABLE, year)


def build_gold_partition(
    store: ObjectStore,
    table: GoldTable,
    year: int,
    *,
    memory_limit: str = DUCKDB_MEMORY_LIMIT,
    log: Log | None = None,
    force: bool = False,
) -> GoldPartition:
    """Run `table`'s SQL over silver `year` and publish the result as that year of the gold table, through the
    partition protocol; DuckDB may use `memory_limit` (BOSTON_LAKE_DUCKDB_MEMORY_LIMIT; a year of 300,000 cases
    needs under 64MB). A year already built from the same silver objects by the same SQL is left as it is."""
    return publish_partition(_GoldBuild(store, table, year, memory_limit), log or LOG, force=force)


class _GoldBuild(PartitionBuild[GoldPartition]):
    """One gold year as the partition protocol builds it: fingerprinted by its silver objects' content and the SQL."""

    error = GoldError

    def __init__(self, store: ObjectStore, table: GoldTable, year: int, memory_limit: str):
        super().__init__(store, GOLD_ZONE, table.name, year, layout.data_key(GOLD_ZONE, table.name, year))
        self.gold = table
        self.memory_limit = memory_limit
        self.silver_files: list[StoredObject] = []
        self.silver_rows = 0

    @property
    def label(self) -> str:
        return f"gold/{self.table} {self.year}"

    def fingerprint(self) -> str:
        silver_prefix = silver_partition_prefix(self.year)
        self.silver_files, _ = data_objects(self.store, silver_prefix)
        if not self.silver_files:
            raise GoldError(
                f"{self.label}: silver has no Parquet under {self.store.uri(silver_prefix)}; "
                f"materialize silver/{SILVER_TABLE} for {self.year} first"
            )
        described = {
            "sql": hashlib.sha256(self.gold.sql.encode()).hexdigest(),
            "silver": [[stored.key, object_sha256(self.store, stored)] for stored in self.silver_files],
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()

    def current(self, fingerprint: str) -> GoldPartition | None:
        """The published year, if it was built from these very silver objects by this SQL."""
        if not self.store.exists(self.data_key):
            return None
        parquet = open_parquet(self.store, self.data_key)
        meta = footer_metadata(parquet)
        if meta.get(META_PREFIX + "fingerprint") != fingerprint:
            return None
        return self._partition(
            parquet.metadata.num_rows,
            int(meta.get(META_PREFIX + "silver_rows", "0")),
            parquet.schema_arrow,
            changed=False,
            reason="already built from these silver objects by this SQL",
        )

    def stage(self, work: Workspace, fingerprint: str) -> Staged:
        result = work.folder / "staged.parquet"
        with contextlib.ExitStack() as stack:
            paths = [stack.enter_context(self.store.reading(stored.key)) for stored in self.silver_files]
            silver_uris = [self.store.uri(stored.key) for stored in self.silver_files]
            self.silver_rows = _run(self.gold, self.year, paths, result, silver_uris, self.memory_limit, fingerprint)
        return Staged(path=result)

    def publish(self, staged: Staged, accepted: AcceptedShrink | None) -> GoldPartition:
        assert staged.path is not None, "staged first"
        written = pq.ParquetFile(staged.path)
        rows, schema = written.metadata.num_rows, written.schema_arrow
        self.store.publish(staged.path, self.data_key)
        return self._partition(rows, self.silver_rows, schema)

    def _partition(self, rows: int, silver_rows: int, schema: pa.Schema, **outcome: Any) -> GoldPartition:
        files = tuple(stored.key for stored in self.silver_files)
        return GoldPartition(self.table, self.year, self.data_key, rows, silver_rows, files, schema, **outcome)


def _run(
    table: GoldTable,
    year: int,
    silver_paths: list[Path],
    result: Path,
    silver_uris: list[str],
    memory_limit: str,
    fingerprint: str,
) -> int:
    """Write the query's rows to `result`, with the fingerprint in its footer; returns the silver rows read."""
    with connect(memory_limit=memory_limit) as connection:  # in UTC: local time only where the SQL asks for it
        try:
            connection.read_parquet([str(path) for path in silver_paths], union_by_name=True).create_view("silver")
            [(silver_rows,)] = connection.sql("SELECT count(*) FROM silver").fetchall()
            metadata = {META_PREFIX + "fingerprint": fingerprint, META_PREFIX + "silver_rows": str(silver_rows)}
            pairs = ", ".join(f"{sql_literal(key)}: {sql_literal(value)}" for key, value in metadata.items())
            connection.execute(
                f"COPY (\n{table.sql.strip().rstrip(';')}\n) TO {sql_literal(str(result))} "
                f"(FORMAT parquet, COMPRESSION zstd, KV_METADATA {{{pairs}}})"
            )
        except duckdb.Error as error:
            raise GoldError(
                f"gold/{table.name} {year}: {table.sql_file} failed on silver {', '.join(silver_uris)}: {error}"
            ) from error
        return int(silver_rows)
