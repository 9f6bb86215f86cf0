"""Gold tables: answers to the questions people keep asking, built from one silver year by SQL kept here.

Each table is one SQL file over a view named `silver` (one year of `silver/service_requests`), run by DuckDB
in-process on both targets: a silver year is tens of MB and its answer a few thousand rows, so reading it
through the object store (a local folder, or S3 downloaded to a scratch file) costs seconds, where a Glue
job would bill a minute of two DPU per year and Athena CTAS cannot replace one partition in place. The year
is published as one Parquet object, so readers see the old year or the new one, as with bronze.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from boston_lake.lake import layout
from boston_lake.lake.catalog.scan import data_objects
from boston_lake.lake.duck import connect
from boston_lake.lake.errors import LakeError
from boston_lake.lake.settings import DUCKDB_MEMORY_LIMIT
from boston_lake.lake.stores import ObjectStore
from boston_lake.lake.zones.silver.model import SILVER_TABLE, SILVER_ZONE

GOLD_ZONE = "gold"


class GoldError(LakeError, RuntimeError):
    """A gold year could not be built; the message names the silver files or the SQL at fault."""


@dataclass(frozen=True)
class GoldTable:
    name: str
    sql_file: str
    description: str

    @property
    def sql(self) -> str:
        return resources.files(__package__).joinpath(self.sql_file).read_text(encoding="utf-8")


SERVICE_LEVELS = GoldTable(
    "service_levels",
    "service_levels.sql",
    "Per month (local) x source system x neighborhood x case type x department, and per year by neighborhood "
    "and by department (column grain): cases opened, closed, still open, median and p90 hours to close, "
    "on-time share.",
)
INTAKE = GoldTable(
    "intake",
    "intake.sql",
    "Cases opened per local day, weekday and hour of day and channel: the shape of demand.",
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


def silver_partition_prefix(year: int) -> str:
    return layout.partition_prefix(SILVER_ZONE, SILVER_TABLE, year)


def build_gold_partition(
    store: ObjectStore, table: GoldTable, year: int, *, memory_limit: str = DUCKDB_MEMORY_LIMIT
) -> GoldPartition:
    """Run `table`'s SQL over silver `year` and publish the result as that year of the gold table; DuckDB may use
    `memory_limit` (BOSTON_LAKE_DUCKDB_MEMORY_LIMIT; a year of 300,000 cases needs under 64MB)."""
    silver_prefix = silver_partition_prefix(year)
    silver_files, _ = data_objects(store, silver_prefix)
    if not silver_files:
        raise GoldError(
            f"gold/{table.name} {year}: silver has no Parquet under {store.uri(silver_prefix)}; "
            f"materialize silver/{SILVER_TABLE} for {year} first"
        )
    key = layout.data_key(GOLD_ZONE, table.name, year)
    with contextlib.ExitStack() as stack:
        paths = [stack.enter_context(store.reading(stored.key)) for stored in silver_files]
        result = stack.enter_context(store.scratch_file(".parquet"))
        silver_uris = [store.uri(stored.key) for stored in silver_files]
        silver_rows = _run(table, year, paths, result, silver_uris, memory_limit)
        written = pq.ParquetFile(result)
        rows, schema = written.metadata.num_rows, written.schema_arrow
        store.publish(result, key)
    return GoldPartition(table.name, year, key, rows, silver_rows, tuple(stored.key for stored in silver_files), schema)


def _run(
    table: GoldTable, year: int, silver_paths: list[Path], result: Path, silver_uris: list[str], memory_limit: str
) -> int:
    """Write the query's rows to `result`; returns the silver rows read."""
    with connect(memory_limit=memory_limit) as connection:  # in UTC: local time only where the SQL asks for it
        try:
            connection.read_parquet([str(path) for path in silver_paths], union_by_name=True).create_view("silver")
            [(silver_rows,)] = connection.sql("SELECT count(*) FROM silver").fetchall()
            connection.sql(table.sql).write_parquet(str(result), compression="zstd")
        except duckdb.Error as error:
            raise GoldError(
                f"gold/{table.name} {year}: {table.sql_file} failed on silver {', '.join(silver_uris)}: {error}"
            ) from error
        return int(silver_rows)
