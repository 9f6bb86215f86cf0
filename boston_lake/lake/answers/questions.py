"""The questions the charts answer, as SQL over the catalog's gold and silver tables.

Both the charts in Dagster's metadata and the HTML report read their numbers through these functions, from
whichever SQL engine serves the catalog (DuckDB locally, Athena on AWS), so what a person sees is what
`boston-lake query` would return.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from boston_lake.lake.catalog import Catalog, EntityNotFound
from boston_lake.lake.catalog.iceberg import IcebergError, IcebergTables
from boston_lake.lake.catalog.scan import data_objects
from boston_lake.lake.duck import connect, sql_identifier, sql_literal
from boston_lake.lake.query.engine import location_key
from boston_lake.lake.stores import ObjectStore
from boston_lake.lake.tables import DATABASE
from boston_lake.lake.zones.gold import INTAKE, SERVICE_LEVELS, GoldTable
from boston_lake.lake.zones.silver.model import SILVER_TABLE

Query = Callable[[str], pa.Table]
GRID_DEGREES = 0.01  # open-case map cells: about 1.1 km north-south by 0.8 km east-west in Boston

SERVICE_LEVELS_TABLE = f"{DATABASE}.{SERVICE_LEVELS.name}"
INTAKE_TABLE = f"{DATABASE}.{INTAKE.name}"
SILVER = f"{DATABASE}.{SILVER_TABLE}"


@contextlib.contextmanager
def gold_answers(tables: IcebergTables, gold: Sequence[GoldTable], memory_limit: str) -> Iterator[Query]:
    """The questions over the `gold` tables' current data files, in a DuckDB capped like the builds: how a gold
    run charts what it has just committed, without resolving every table of the catalog (or paying Athena) for
    each question. The numbers are those the catalog's engine returns (tested)."""
    with contextlib.ExitStack() as stack:
        connection = stack.enter_context(connect(memory_limit=memory_limit))
        connection.execute(f"CREATE SCHEMA {sql_identifier(DATABASE)}")
        for table in gold:
            keys = [key for _, keys in sorted(tables.keys_by_year(table.name).items()) for key in keys]
            if not keys:
                raise IcebergError(f"{tables.database}.{table.name} holds no year yet: there is nothing to chart")
            paths = ", ".join(sql_literal(str(stack.enter_context(tables.store.reading(key)))) for key in keys)
            connection.execute(
                f"CREATE VIEW {sql_identifier(DATABASE)}.{sql_identifier(table.name)} AS "
                f"SELECT * FROM read_parquet([{paths}], union_by_name = true)"
            )
        yield lambda sql: connection.sql(sql).to_arrow_table()


# The charts name their traces and the report its year picker by the year as text.
YEAR_TEXT = "CAST(year AS VARCHAR) AS year"


def cases_per_month(query: Query) -> pa.Table:
    """month, source_system, cases: the volume on each side of the 2025 switch to the new CRM."""
    return query(
        f"SELECT month, source_system, CAST(sum(opened) AS BIGINT) AS cases FROM {SERVICE_LEVELS_TABLE} "
        "WHERE grain = 'month' GROUP BY month, source_system ORDER BY month, source_system"
    )


def median_hours_by_neighborhood(query: Query) -> pa.Table:
    """year, neighborhood, median_hours_to_close, p90_hours_to_close, opened, still_open."""
    return query(
        f"SELECT {YEAR_TEXT}, neighborhood, median_hours_to_close, p90_hours_to_close, opened, still_open "
        f"FROM {SERVICE_LEVELS_TABLE} WHERE grain = 'year_neighborhood' ORDER BY year, median_hours_to_close DESC"
    )


def on_time_share_by_department(query: Query) -> pa.Table:
    """year, department, on_time_share, with_on_time (cases that carry a verdict)."""
    return query(
        f"SELECT {YEAR_TEXT}, department, on_time_share, with_on_time "
        f"FROM {SERVICE_LEVELS_TABLE} WHERE grain = 'year_department' AND with_on_time > 0 "
        "ORDER BY year, on_time_share"
    )


def intake_by_weekday_and_hour(query: Query) -> pa.Table:
    """year, weekday (ISO, 1 = Monday), hour (local), cases_opened."""
    return query(
        f"SELECT {YEAR_TEXT}, weekday, hour, CAST(sum(cases_opened) AS BIGINT) AS cases_opened FROM {INTAKE_TABLE} "
        "GROUP BY year, weekday, hour ORDER BY year, weekday, hour"
    )


def open_cases_grid(query: Query) -> pa.Table:
    """year, latitude, longitude (cell centres of a GRID_DEGREES grid), open_cases: where unfinished work is."""
    cell = f"{GRID_DEGREES!r}"
    return query(
        f"SELECT {YEAR_TEXT}, (floor(latitude / {cell}) + 0.5) * {cell} AS latitude, "
        f"(floor(longitude / {cell}) + 0.5) * {cell} AS longitude, count(*) AS open_cases FROM {SILVER} "
        "WHERE closed_at IS NULL AND latitude IS NOT NULL AND longitude IS NOT NULL "
        f"GROUP BY year, floor(latitude / {cell}), floor(longitude / {cell}) ORDER BY year, latitude, longitude"
    )


def newest_case(query: Query) -> datetime | None:
    return query(f"SELECT max(opened_at) AS newest FROM {SILVER}").column("newest")[0].as_py()


@dataclass(frozen=True)
class TableFreshness:
    table: str
    partitions: int
    records: int
    last_refresh: datetime | None  # the newest data object under the table's Location (Iceberg: the last commit)


def table_freshness(catalog: Catalog, store: ObjectStore, database: str = DATABASE) -> list[TableFreshness]:
    """Every catalog table with when its data last changed, read from the objects, not from the catalog."""
    try:
        tables = catalog.list_tables(database)
    except EntityNotFound:
        return []
    found = []
    for table in sorted(tables, key=lambda table: table["Name"]):
        name = f"{database}.{table['Name']}"
        files, _ = data_objects(store, location_key(store, name, table["StorageDescriptor"]["Location"]))
        found.append(
            TableFreshness(
                table=name,
                partitions=len(catalog.get_partitions(database, table["Name"])) if table.get("PartitionKeys") else 1,
                records=int(table.get("Parameters", {}).get("recordCount", 0) or 0),
                last_refresh=max((stored.last_modified for stored in files), default=None),
            )
        )
    return found


def iceberg_freshness(tables: IcebergTables | None) -> list[TableFreshness]:
    """Every Iceberg table (silver, gold) with its years, rows and when its current snapshot was committed; a table
    that cannot be read (a lake moved since) is left out."""
    if tables is None:
        return []
    found = []
    for name in tables.names():
        try:
            table = tables.table(name)
        except IcebergError:
            continue
        snapshot = table.current_snapshot()
        records = snapshot.summary["total-records"] if snapshot and snapshot.summary else None
        found.append(
            TableFreshness(
                table=f"{tables.database}.{name}",
                partitions=len(tables.keys_by_year(name)),
                records=int(records or 0),
                last_refresh=datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC) if snapshot else None,
            )
        )
    return found
