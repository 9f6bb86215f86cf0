"""The DuckDB helpers every SQL-building module shares: the one way a connection is opened, quoting, and the one
row a statement must answer."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

ConfigValue = str | bool | int | float | list[str]


def connect(
    *,
    memory_limit: str | None,
    threads: int | None = None,
    temp_directory: str | Path | None = None,
    preserve_insertion_order: bool = True,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection, as every part of the lake opens one.

    - TimeZone is UTC, as Spark's session on Glue and Athena have it: a timestamp without an offset is UTC, and
      no result depends on the machine's time zone (local time only where the SQL asks for it).
    - No extension is installed or loaded behind the lake's back (`autoinstall_known_extensions` and
      `autoload_known_extensions` off): nothing is downloaded at run time, and what the lake uses (Parquet,
      JSON, ICU's time zones) is built into the duckdb package.
    - `memory_limit` (e.g. "192MB"; settings.DUCKDB_MEMORY_LIMIT is the builds' default) caps DuckDB's memory,
      beyond which it spills to `temp_directory`; None keeps DuckDB's own cap (80% of RAM), for readers that
      are not a build. `threads` None: DuckDB's own default (every core).
    - `preserve_insertion_order` False lets parallel writers emit rows out of order, in less memory.
    """
    config: dict[str, ConfigValue] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if threads is not None:
        config["threads"] = threads
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    if not preserve_insertion_order:
        config["preserve_insertion_order"] = False
    connection = duckdb.connect(config=config)
    try:
        # A SET, not a config entry: DuckDB takes TimeZone only once its ICU extension is loaded.
        connection.execute("SET TimeZone = 'UTC'")
    except BaseException:
        connection.close()
        raise
    return connection


@contextmanager
def spilling_into(
    work: Path | None,
    *,
    prefix: str,
    memory_limit: str | None,
    threads: int | None = None,
    preserve_insertion_order: bool = True,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A `connect` connection that spills into a folder of its own under `work` (a partition's workspace, so that a
    killed run's spill is swept with it by the next run of the partition); the folder goes with the connection."""
    with (
        tempfile.TemporaryDirectory(prefix=prefix, dir=work) as spill,
        connect(
            memory_limit=memory_limit,
            threads=threads,
            preserve_insertion_order=preserve_insertion_order,
            temp_directory=spill,
        ) as connection,
    ):
        yield connection


def sql_identifier(name: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    """A DuckDB string literal, quoted."""
    return "'" + value.replace("'", "''") + "'"


def one_row(connection: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The row a statement answers (an aggregate, or COPY's row count); no row is a bug worth naming the SQL."""
    row = connection.execute(sql).fetchone()
    if row is None:
        raise RuntimeError(f"DuckDB answered no row to {sql.strip()[:200]!r}")
    return row
