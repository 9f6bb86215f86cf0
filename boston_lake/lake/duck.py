"""Small DuckDB helpers every SQL-building module shares: quoting, and the one row a statement must answer."""

from __future__ import annotations

from typing import Any

import duckdb


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
