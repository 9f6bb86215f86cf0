"""A query result as the `boston-lake` command and the demo print it."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pyarrow as pa
import pyarrow.csv as pacsv
from tabulate import tabulate


def format_result(result: pa.Table, style: str) -> str:
    if style == "csv":
        buffer = io.BytesIO()
        pacsv.write_csv(result, buffer)
        return buffer.getvalue().decode().rstrip("\n")
    rows = result.to_pylist()
    if style == "json":
        return json.dumps(rows, default=_json_value, indent=1)
    return (
        tabulate(rows, headers="keys", tablefmt="github")
        if rows
        else f"0 rows (columns: {', '.join(result.column_names) or 'none'})"
    )


def _json_value(value: object) -> object:
    """A value JSON has no type for: a DECIMAL (DuckDB's sum of integers is one) as a number, the rest as text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)
