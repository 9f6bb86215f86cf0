"""Facts about a silver year that its checks judge: ids unique within it and against its neighbours, every
bronze case placed in exactly one silver year, and the night trough of the local open hours.

Only ids and open times are read, so checking a year costs a fraction of building it.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import duckdb

from boston_lake.lake import layout
from boston_lake.lake.catalog.iceberg import IcebergTables
from boston_lake.lake.duck import connect, one_row, sql_identifier, sql_literal
from boston_lake.lake.settings import DUCKDB_MEMORY_LIMIT
from boston_lake.lake.tables import TABLES
from boston_lake.lake.zones.silver.inputs import window
from boston_lake.lake.zones.silver.model import SILVER_TABLE, TIMEZONE
from boston_lake.lake.zones.silver.withdrawn import WITHDRAWN_AT

EXAMPLES = 5
# 311 intake is lowest in the small hours; a trough elsewhere means a time base is wrong (v2's shift put it at
# 9-10 PM, a UTC reading of the NEW SYSTEM at 11 PM).
NIGHT_HOURS = range(1, 6)


@dataclass(frozen=True)
class SilverFacts:
    year: int
    rows: int
    null_ids: int
    duplicate_ids: int
    ids_in_neighbours: int  # ids of this year that a neighbouring silver year also holds
    neighbour_examples: list[str]
    bronze_ids: int  # distinct case ids in this year's bronze files, both tables
    bronze_ids_unplaced: int  # ... found in no silver year of the window
    bronze_ids_placed_twice: int  # ... found in more than one
    unplaced_examples: list[str]
    silver_years_missing: list[int]  # neighbouring silver years not built (their cases cannot be found yet)
    withdrawn: int  # cases kept with withdrawn_at: the source lists them no more
    withdrawn_examples: list[str]
    local_open_hours: list[int]

    @property
    def night_trough_hour(self) -> int | None:
        return trough_hour(self.local_open_hours)


def trough_hour(hours: list[int]) -> int | None:
    """The middle hour of the quietest three consecutive hours of a 24-hour histogram (wrapping at midnight)."""
    if not any(hours):
        return None
    sums = [hours[(hour - 1) % 24] + hours[hour] + hours[(hour + 1) % 24] for hour in range(24)]
    return sums.index(min(sums))


def silver_years(tables: IcebergTables) -> list[int]:
    """The years the silver table holds, for checks run outside a partitioned run."""
    return sorted(tables.keys_by_year(SILVER_TABLE))


def silver_facts(tables: IcebergTables, years: list[int]) -> list[SilverFacts]:
    """The facts of each of `years`, from one reading of the table's current files."""
    published = tables.keys_by_year(SILVER_TABLE)
    return [_year_facts(tables, published, year) for year in years]


def _year_facts(tables: IcebergTables, published: dict[int, list[str]], year: int) -> SilverFacts:
    store = tables.store
    neighbours = [y for y in window(year) if y != year]
    present = {y: published[y] for y in window(year) if y in published}
    if year not in present:
        raise FileNotFoundError(
            f"silver {year} has not been built: the table {tables.database}.{SILVER_TABLE} has no {year}"
        )
    bronze_keys = [
        (table, layout.bronze_data_key(table.name, year))
        for table in TABLES
        if store.exists(layout.bronze_data_key(table.name, year))
    ]
    with ExitStack() as stack, connect(memory_limit=DUCKDB_MEMORY_LIMIT) as connection:
        paths = [(y, stack.enter_context(store.reading(key))) for y, keys in present.items() for key in keys]
        connection.execute(
            "CREATE TEMP VIEW silver AS "
            + " UNION ALL ".join(
                f"SELECT case_id, {y} AS year, opened_at FROM read_parquet({sql_literal(str(p))})" for y, p in paths
            )
        )
        # Every generation of a table names its id column the same way.
        bronze = [
            f"SELECT CAST({sql_identifier(table.generations[0].id_column)} AS VARCHAR) AS case_id "
            f"FROM read_parquet({sql_literal(str(stack.enter_context(store.reading(key))))})"
            for table, key in bronze_keys
        ]
        connection.execute(
            "CREATE TEMP VIEW bronze AS "
            + (" UNION ALL ".join(bronze) if bronze else "SELECT CAST(NULL AS VARCHAR) AS case_id WHERE false")
        )
        own = ", ".join(sql_literal(str(path)) for y, path in paths if y == year)
        connection.execute(f"CREATE TEMP VIEW own_year AS SELECT * FROM read_parquet([{own}], union_by_name = true)")
        return _facts(connection, year, [y for y in neighbours if y not in present])


def _facts(connection: duckdb.DuckDBPyConnection, year: int, missing: list[int]) -> SilverFacts:
    rows, null_ids, duplicate_ids = _one(
        connection,
        "SELECT count(*), count(*) - count(case_id), count(case_id) - count(DISTINCT case_id) FROM silver "
        f"WHERE year = {year}",
    )
    in_neighbours = _column(
        connection,
        f"SELECT DISTINCT case_id FROM silver WHERE year = {year} AND case_id IN "
        f"(SELECT case_id FROM silver WHERE year <> {year}) ORDER BY 1",
    )
    placements = (
        "SELECT b.case_id, count(s.case_id) AS placed FROM (SELECT DISTINCT case_id FROM bronze "
        "WHERE case_id IS NOT NULL) b LEFT JOIN silver s ON s.case_id = b.case_id GROUP BY b.case_id"
    )
    bronze_ids, placed_twice = _one(
        connection, f"SELECT count(*), count(*) FILTER (WHERE placed > 1) FROM ({placements})"
    )
    unplaced = _column(connection, f"SELECT case_id FROM ({placements}) WHERE placed = 0 ORDER BY 1")
    hours = dict(
        connection.execute(
            f"SELECT hour(timezone({sql_literal(TIMEZONE)}, opened_at)), count(*) FROM silver "
            f"WHERE year = {year} AND opened_at IS NOT NULL GROUP BY ALL"
        ).fetchall()
    )
    has_withdrawn = WITHDRAWN_AT in [row[0] for row in connection.execute("DESCRIBE own_year").fetchall()]
    withdrawn = (
        _column(connection, f"SELECT case_id FROM own_year WHERE {WITHDRAWN_AT} IS NOT NULL ORDER BY 1")
        if has_withdrawn
        else []
    )
    return SilverFacts(
        year=year,
        rows=rows,
        null_ids=null_ids,
        duplicate_ids=duplicate_ids,
        ids_in_neighbours=len(in_neighbours),
        neighbour_examples=in_neighbours[:EXAMPLES],
        bronze_ids=bronze_ids,
        bronze_ids_unplaced=len(unplaced),
        bronze_ids_placed_twice=placed_twice,
        unplaced_examples=unplaced[:EXAMPLES],
        silver_years_missing=missing,
        withdrawn=len(withdrawn),
        withdrawn_examples=withdrawn[:EXAMPLES],
        local_open_hours=[int(hours.get(hour, 0)) for hour in range(24)],
    )


def _one(connection: duckdb.DuckDBPyConnection, sql: str) -> tuple[int, ...]:
    return tuple(int(value) for value in one_row(connection, sql))


def _column(connection: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    return [value for (value,) in connection.execute(sql).fetchall()]
