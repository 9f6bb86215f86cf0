"""DataStore records (JSON lines, one record per line) to the same typed Parquet as the CSV path.

DuckDB's `read_json` streams the file in bounded memory with every field read as text, exactly as the
CSV path reads its cells; each value is then typed with the table's schema generation, blanks (`null`,
`""`, `" "`) are null as in the CSV path, and a record with a value that does not fit its type is not
dropped but listed in the rejects file with its `_id`, the column and the value. `_id` is accepted and not
kept: it is the DataStore's load-order number, renumbered at every reload, not part of the case.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from boston_lake.lake.duck import one_row, sql_identifier, sql_literal
from boston_lake.lake.source.datastore import ROW_ID
from boston_lake.lake.tables import SchemaGeneration

if TYPE_CHECKING:  # bronze.py imports this module to convert JSON-lines raw files
    from boston_lake.lake.zones.bronze import ConverterSettings

REJECT_COLUMNS = ("raw_key", ROW_ID, "error_type", "column", "reason", "raw_record")


def convert_json_lines(
    source: Path,
    destination: Path,
    generation: SchemaGeneration,
    fields: list[str],
    *,
    rejects_destination: Path,
    source_label: str,
    kv_metadata: dict[str, str],
    settings: ConverterSettings,
) -> tuple[int, int]:
    """Convert one JSON-lines file whose records carry `fields`; returns (rows written, records rejected).

    Rejected records go to `rejects_destination` (a CSV of REJECT_COLUMNS), only when there are any."""
    types = generation.types
    columns = [name for name in fields if name != ROW_ID]
    typed = [name for name in columns if types[name] != "VARCHAR"]
    as_read = ", ".join(
        f"{sql_literal(name)}: {sql_literal('BIGINT' if name == ROW_ID else 'VARCHAR')}" for name in fields
    )
    metadata = ", ".join(f"{sql_literal(key)}: {sql_literal(value)}" for key, value in kv_metadata.items())
    with tempfile.TemporaryDirectory(prefix="boston_lake_convert_") as work:
        connection = settings.connection(work)  # in UTC: a value without an offset is UTC, as in the CSV path
        try:
            connection.execute(
                f"CREATE TEMP VIEW source AS SELECT {', '.join(_blank_is_null(name) for name in fields)} "
                f"FROM read_json({sql_literal(str(source))}, format = 'newline_delimited', columns = {{{as_read}}})"
            )
            fits = " AND ".join(_fits(name, types[name]) for name in typed) or "true"
            casts = ", ".join(
                f"CAST({sql_identifier(name)} AS {types[name]}) AS {sql_identifier(name)}" for name in columns
            )
            (rows,) = one_row(
                connection,
                f"""
                COPY (
                    SELECT {casts}
                    FROM source WHERE {fits}
                ) TO {sql_literal(str(destination))}
                (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {int(settings.row_group_size)}
                 {f", KV_METADATA {{{metadata}}}" if metadata else ""})
                """,
            )
            # Every line written means no record misfit: the rejects pass, a second parse of every typed column,
            # is needed only when some record was held back.
            complete = int(rows) == _lines(source)
            rejects = (
                0
                if complete or not typed
                else _write_rejects(connection, typed, types, source_label, rejects_destination)
            )
        finally:
            connection.close()
    return int(rows), rejects


def _write_rejects(
    connection: duckdb.DuckDBPyConnection, typed: list[str], types: dict[str, str], label: str, destination: Path
) -> int:
    misfits = " UNION ALL ".join(
        f"SELECT {sql_identifier(ROW_ID)} AS row_id, {sql_literal(name)} AS column_name, "
        f"{sql_identifier(name)} AS value, "
        f"{sql_literal(types[name])} AS type_name, "
        f"to_json(source)::VARCHAR AS raw_record FROM source WHERE NOT {_fits(name, types[name])}"
        for name in typed
    )
    connection.execute(f"CREATE TEMP VIEW misfits AS {misfits}")
    count = one_row(connection, "SELECT count(DISTINCT raw_record) FROM misfits")[0]
    if count:
        connection.execute(
            f"""
            COPY (
                SELECT {sql_literal(label)} AS raw_key, any_value(row_id) AS {sql_identifier(ROW_ID)},
                       'CAST' AS error_type,
                       string_agg(column_name, '; ' ORDER BY column_name) AS "column",
                       string_agg(printf('%s: %s is not a %s', column_name, value, type_name), '; '
                                  ORDER BY column_name) AS reason,
                       raw_record
                FROM misfits GROUP BY raw_record ORDER BY 2
            ) TO {sql_literal(str(destination))} (FORMAT csv, HEADER true)
            """
        )
    return int(count)


def _lines(path: Path) -> int:
    """The lines of a file, the last one counted also without its newline: at least its JSON records."""
    lines, last = 0, b"\n"
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _fits(name: str, duckdb_type: str) -> str:
    return f"({sql_identifier(name)} IS NULL OR TRY_CAST({sql_identifier(name)} AS {duckdb_type}) IS NOT NULL)"


def _blank_is_null(name: str) -> str:
    """The CSV path's null strings, '' and ' ', are null here too."""
    if name == ROW_ID:
        return sql_identifier(name)
    column = sql_identifier(name)
    return f"CASE WHEN {column} IN ('', ' ') THEN NULL ELSE {column} END AS {column}"
