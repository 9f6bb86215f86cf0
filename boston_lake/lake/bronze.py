"""The bronze zone: each raw file as typed, zstd-compressed Parquet, one object per year.

DuckDB streams the CSV into Parquet in bounded memory and hands back every row it could not parse, with
the line and the reason, so nothing is dropped silently. A partition is a single object published in one
step, so readers see the previous year or the new one, never a mix, and a crash leaves the old one whole.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from boston_lake.lake import layout
from boston_lake.lake.csvscan import CsvFormatError, read_header, repair_encoding
from boston_lake.lake.manifest import RawManifest, read_manifest
from boston_lake.lake.portal import Log
from boston_lake.lake.stores import ObjectStore
from boston_lake.lake.tables import HeaderMismatch, LakeTable, SchemaGeneration

# Bump when the same raw file would convert differently, so that existing partitions are rebuilt.
CONVERTER_VERSION = "1"
META_PREFIX = "boston_lake."
PREVIEW_ROWS = 5
REJECT_COLUMNS = ["raw_key", "line", "error_type", "column", "reason", "raw_line"]


class BronzeError(RuntimeError):
    """A bronze partition could not be built; the message names the table, year and raw file."""


@dataclass(frozen=True)
class Reject:
    line: int
    error_type: str
    column: str
    reason: str
    raw_line: str


@dataclass(frozen=True)
class Conversion:
    rows: int
    rejects: list[Reject]
    generation: SchemaGeneration
    schema: pa.Schema
    encoding_repaired_rows: int = 0


@dataclass(frozen=True)
class ConverterSettings:
    """DuckDB's limits: memory is capped so that a 2 GB file converts like a 2 MB one, spilling if needed."""

    memory_limit: str = "256MB"
    threads: int = max(1, os.cpu_count() or 1)


def convert_csv(
    source: Path,
    destination: Path,
    table: LakeTable,
    *,
    repair: bool = False,
    kv_metadata: dict[str, str] | None = None,
    settings: ConverterSettings = ConverterSettings(),
) -> Conversion:
    """Convert one CSV file of `table` to Parquet; raises CsvFormatError or HeaderMismatch for unusable files."""
    header, _ = read_header(source)
    generation = table.match_generation(header)
    with tempfile.TemporaryDirectory(prefix="boston_lake_convert_") as work:
        repaired = 0
        if repair:
            fixed = Path(work) / "repaired.csv"
            repaired = len(repair_encoding(source, fixed))
            source = fixed
        connection = duckdb.connect(
            config={"memory_limit": settings.memory_limit, "threads": settings.threads, "temp_directory": work}
        )
        try:
            rows = _copy(connection, source, destination, generation, header, kv_metadata or {})
            rejects = _rejects(connection)
        finally:
            connection.close()
    return Conversion(rows, rejects, generation, pq.read_schema(destination), repaired)


def _copy(
    connection: duckdb.DuckDBPyConnection,
    source: Path,
    destination: Path,
    generation: SchemaGeneration,
    header: list[str],
    kv_metadata: dict[str, str],
) -> int:
    types = generation.types
    columns = ", ".join(f"{_string(name)}: {_string(types[name])}" for name in header)
    metadata = ", ".join(f"{_string(key)}: {_string(value)}" for key, value in kv_metadata.items())
    sql = f"""
        COPY (
            SELECT * FROM read_csv({_string(str(source))},
                header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
                columns = {{{columns}}}, nullstr = ['', ' '], store_rejects = true, strict_mode = true,
                hive_partitioning = false)
        ) TO {_string(str(destination))}
        (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880{f', KV_METADATA {{{metadata}}}' if metadata else ''})
    """
    (rows,) = connection.execute(sql).fetchone()
    return int(rows)


def _rejects(connection: duckdb.DuckDBPyConnection) -> list[Reject]:
    """One reject per source line, all of its errors in the reason."""
    rows = connection.execute(
        """
        SELECT line, string_agg(error_type, '; ' ORDER BY column_idx), string_agg(coalesce(column_name, ''), '; ' ORDER BY column_idx),
               string_agg(error_message, '; ' ORDER BY column_idx), any_value(csv_line)
        FROM reject_errors GROUP BY line ORDER BY line
        """
    ).fetchall()
    return [Reject(int(line), kinds, columns, reasons, raw or "") for line, kinds, columns, reasons, raw in rows]


def _string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class BronzePartition:
    table: str
    year: int
    key: str
    rows: int
    rejects: int
    bytes: int
    schema: pa.Schema
    generation: str
    raw_key: str
    raw_sha256: str
    raw_data_rows: int
    encoding_repaired_rows: int
    changed: bool
    reason: str
    preview: list[dict[str, Any]]

    def metadata(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "reason": self.reason,
            "key": self.key,
            "rows": self.rows,
            "rejects": self.rejects,
            "bytes": self.bytes,
            "schema_generation": self.generation,
            "raw_key": self.raw_key,
            "raw_sha256": self.raw_sha256,
            "raw_data_rows": self.raw_data_rows,
            "encoding_repaired_rows": self.encoding_repaired_rows,
        }


def open_parquet(store: ObjectStore, key: str) -> pq.ParquetFile:
    filesystem, base = store.arrow_filesystem()
    return pq.ParquetFile(filesystem.open_input_file(f"{base}/{key}"))


class BronzeZone:
    def __init__(self, raw_store: ObjectStore, lake_store: ObjectStore, log: Log,
                 settings: ConverterSettings = ConverterSettings()):
        self.raw_store = raw_store
        self.lake_store = lake_store
        self.log = log
        self.settings = settings

    def build(self, table: LakeTable, year: int, force: bool = False) -> BronzePartition:
        raw_prefix = layout.raw_partition_prefix(table.name, year)
        manifest = read_manifest(self.raw_store, raw_prefix + layout.MANIFEST)
        if manifest is None:
            raise BronzeError(
                f"{table.name} {year}: the raw partition {self.raw_store.uri(raw_prefix)} has not been ingested; "
                f"materialize raw/{table.name} for {year} first"
            )
        key = layout.bronze_data_key(table.name, year)
        if not force:
            current = self._current(table, year, key, manifest)
            if current:
                return current
        with self.raw_store.reading(manifest.key) as csv_path, self.lake_store.scratch_file(".parquet") as staged:
            try:
                conversion = convert_csv(
                    csv_path,
                    staged,
                    table,
                    repair=manifest.invalid_utf8_rows > 0,
                    kv_metadata=self._kv_metadata(manifest),
                    settings=self.settings,
                )
            except (CsvFormatError, HeaderMismatch) as error:
                raise BronzeError(f"{table.name} {year}: {self.raw_store.uri(manifest.key)}: {error}") from None
            preview = _preview(staged)
            size = staged.stat().st_size
            self._write_rejects(table, year, manifest, conversion.rejects)
            self.lake_store.publish(staged, key)
        self._remove_strays(table, year, key)
        if conversion.encoding_repaired_rows:
            self.log.warning(
                f"{table.name} {year}: {conversion.encoding_repaired_rows} rows had bytes that are not UTF-8 "
                "and were decoded as Windows-1252"
            )
        if conversion.rejects:
            self.log.warning(
                f"{table.name} {year}: {len(conversion.rejects)} rows could not be parsed; "
                f"kept with reasons in {self.lake_store.uri(layout.bronze_rejects_key(table.name, year))}"
            )
        return BronzePartition(
            table=table.name,
            year=year,
            key=key,
            rows=conversion.rows,
            rejects=len(conversion.rejects),
            bytes=size,
            schema=conversion.schema,
            generation=conversion.generation.name,
            raw_key=manifest.key,
            raw_sha256=manifest.sha256,
            raw_data_rows=manifest.data_rows,
            encoding_repaired_rows=conversion.encoding_repaired_rows,
            changed=True,
            reason="forced rebuild" if force else "new raw file or converter version",
            preview=preview,
        )

    def _kv_metadata(self, manifest: RawManifest) -> dict[str, str]:
        return {
            META_PREFIX + "raw_key": manifest.key,
            META_PREFIX + "raw_sha256": manifest.sha256,
            META_PREFIX + "raw_data_rows": str(manifest.data_rows),
            META_PREFIX + "converter_version": CONVERTER_VERSION,
        }

    def _current(self, table: LakeTable, year: int, key: str, manifest: RawManifest) -> BronzePartition | None:
        """The existing partition, if it was built from this very raw file by this converter version."""
        if not self.lake_store.exists(key):
            return None
        parquet = open_parquet(self.lake_store, key)
        meta = footer_metadata(parquet)
        if (meta.get(META_PREFIX + "raw_sha256") != manifest.sha256
                or meta.get(META_PREFIX + "converter_version") != CONVERTER_VERSION):
            return None
        schema = parquet.schema_arrow
        generation = table.match_generation(schema.names)
        return BronzePartition(
            table=table.name,
            year=year,
            key=key,
            rows=parquet.metadata.num_rows,
            rejects=stored_rejects(self.lake_store, table.name, year),
            bytes=next(iter(self.lake_store.list(key))).size,
            schema=schema,
            generation=generation.name,
            raw_key=manifest.key,
            raw_sha256=manifest.sha256,
            raw_data_rows=manifest.data_rows,
            encoding_repaired_rows=0,
            changed=False,
            reason="already built from this raw file (same sha256) by this converter version",
            preview=_preview_rows(parquet),
        )

    def _write_rejects(self, table: LakeTable, year: int, manifest: RawManifest, rejects: list[Reject]) -> None:
        key = layout.bronze_rejects_key(table.name, year)
        if not rejects:
            self.lake_store.delete(key)
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(REJECT_COLUMNS)
        for reject in rejects:
            writer.writerow([manifest.key, reject.line, reject.error_type, reject.column, reject.reason, reject.raw_line])
        self.lake_store.put_bytes(key, buffer.getvalue().encode("utf-8"))

    def _remove_strays(self, table: LakeTable, year: int, key: str) -> None:
        """Data files in the partition that this writer did not produce would double the year for readers."""
        for stray in self.lake_store.list(layout.bronze_partition_prefix(table.name, year)):
            if stray.key != key and not layout.is_bookkeeping(stray.key):
                self.log.warning(f"{table.name} {year}: removing stray data file {stray.key} from the partition")
                self.lake_store.delete(stray.key)


def footer_metadata(parquet: pq.ParquetFile) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in (parquet.metadata.metadata or {}).items()}


def stored_rejects(store: ObjectStore, table: str, year: int) -> int:
    """How many rows of the partition's raw file were rejected, from the rejects file beside it."""
    key = layout.bronze_rejects_key(table, year)
    if not store.exists(key):
        return 0
    return sum(1 for _ in csv.reader(io.StringIO(store.get_bytes(key).decode("utf-8")))) - 1


def _preview(path: Path) -> list[dict[str, Any]]:
    return _preview_rows(pq.ParquetFile(path))


def _preview_rows(parquet: pq.ParquetFile) -> list[dict[str, Any]]:
    batches: Iterator[pa.RecordBatch] = parquet.iter_batches(batch_size=PREVIEW_ROWS)
    first = next(batches, None)
    return first.to_pylist() if first is not None else []
