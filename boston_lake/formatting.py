"""A query result as the `boston-lake` command and the demo print it."""

from __future__ import annotations

import io
import json

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
        return json.dumps(rows, default=str, indent=1)
    return (
        tabulate(rows, headers="keys", tablefmt="github")
        if rows
        else f"(no rows; columns: {', '.join(result.column_names)})"
    )
