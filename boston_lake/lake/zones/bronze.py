"""The bronze zone: each raw file as typed, zstd-compressed Parquet, one object per year.

DuckDB streams the CSV into Parquet in bounded memory and hands back every row it could not parse, with
the line and the reason, so nothing is dropped silently. A partition is a single object published in one
step, so readers see the previous year or the new one, never a mix, and a crash leaves the old one whole.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from boston_lake.lake import layout
from boston_lake.lake.duck import connect, sql_literal
from boston_lake.lake.errors import LakeError
from boston_lake.lake.log import Log
from boston_lake.lake.settings import DUCKDB_MEMORY_LIMIT
from boston_lake.lake.source.csvscan import CsvFormatError, read_header, repair_encoding
from boston_lake.lake.source.manifest import JSON_LINES, RawManifest, read_manifest
from boston_lake.lake.stores import ObjectStore, StoredObject, StoreError, WorkBusy, Workspace
from boston_lake.lake.tables import HeaderMismatch, LakeTable, SchemaGeneration
from boston_lake.lake.zones.bronze_json import convert_json_lines

# Bump when the same raw file would convert differently, so that existing partitions are rebuilt.
CONVERTER_VERSION = "1"
META_PREFIX = "boston_lake."
PREVIEW_ROWS = 5


class BronzeError(LakeError, RuntimeError):
    """A bronze partition could not be built; the message names the table, year and raw file."""


@dataclass(frozen=True)
class Conversion:
    rows: int
    rejects: int  # source lines, each listed once in the rejects file with all of its errors
    generation: SchemaGeneration
    schema: pa.Schema
    encoding_repaired_rows: int = 0


@dataclass(frozen=True)
class ConverterSettings:
    """DuckDB's limits, measured in benchmarks/: a 50 MB and a 2 GB file both convert in under 300 MiB.

    Row order is not preserved: it lets both cores write row groups in parallel (2x the throughput in the
    same memory), and bronze promises rows, not their order in the file. Row groups of 30,720 rows keep
    the parallel writers within the memory limit; below ~160MB DuckDB runs out of memory on wide files.
    """

    memory_limit: str = DUCKDB_MEMORY_LIMIT  # BOSTON_LAKE_DUCKDB_MEMORY_LIMIT
    threads: int = max(1, os.cpu_count() or 1)
    preserve_insertion_order: bool = False
    row_group_size: int = 30_720

    def connection(self, temp_directory: str) -> duckdb.DuckDBPyConnection:
        """A connection with these limits, spilling into `temp_directory`."""
        return connect(
            memory_limit=self.memory_limit,
            threads=self.threads,
            preserve_insertion_order=self.preserve_insertion_order,
            temp_directory=temp_directory,
        )


def convert_csv(
    source: Path,
    destination: Path,
    table: LakeTable,
    *,
    rejects_destination: Path | None = None,
    source_label: str | None = None,
    repair: bool = False,
    kv_metadata: dict[str, str] | None = None,
    settings: ConverterSettings = ConverterSettings(),
    work_dir: Path | None = None,
) -> Conversion:
    """Convert one CSV file of `table` to Parquet, writing unparseable lines to `rejects_destination` (a CSV
    of raw_key, line, error_type, column, reason, raw_line; only when there are any). DuckDB spills into a
    folder under `work_dir` (the partition's workspace, so a killed run's spill is swept by the next run).
    Raises CsvFormatError or HeaderMismatch for unusable files, BronzeError when DuckDB cannot finish."""
    label = source_label or str(source)
    header, _ = read_header(source)
    generation = table.match_generation(header)
    with tempfile.TemporaryDirectory(prefix="boston_lake_convert_", dir=work_dir) as work:
        repaired = 0
        if repair:
            fixed = Path(work) / "repaired.csv"
            repaired = len(repair_encoding(source, fixed))
            source = fixed
        connection = settings.connection(work)
        try:
            rows = _copy(connection, source, destination, generation, header, kv_metadata or {}, settings)
            rejects = _write_rejects(connection, label, rejects_destination)
        except duckdb.OutOfMemoryException as error:
            raise BronzeError(
                f"{label}: DuckDB ran out of its {settings.memory_limit} memory limit ({error}); "
                "raise the converter memory limit of the storage resource"
            ) from error
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
    settings: ConverterSettings,
) -> int:
    types = generation.types
    columns = ", ".join(f"{sql_literal(name)}: {sql_literal(types[name])}" for name in header)
    metadata = ", ".join(f"{sql_literal(key)}: {sql_literal(value)}" for key, value in kv_metadata.items())
    sql = f"""
        COPY (
            SELECT * FROM read_csv({sql_literal(str(source))},
                header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
                columns = {{{columns}}}, nullstr = ['', ' '], store_rejects = true, strict_mode = true,
                hive_partitioning = false)
        ) TO {sql_literal(str(destination))}
        (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {int(settings.row_group_size)}
         {f", KV_METADATA {{{metadata}}}" if metadata else ""})
    """
    return int(_scalar(connection, sql))


def _scalar(connection: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The one value a statement answers (COPY answers its row count)."""
    row = connection.execute(sql).fetchone()
    if row is None:
        raise BronzeError(f"DuckDB answered no row to {sql.strip()[:200]!r}")
    return row[0]


def _write_rejects(connection: duckdb.DuckDBPyConnection, label: str, destination: Path | None) -> int:
    """One line per rejected source line, all of its errors in the reason; DuckDB streams them to the file,
    so a file full of bad lines costs disk, not memory."""
    count = _scalar(connection, "SELECT count(DISTINCT line) FROM reject_errors")
    if count and destination is not None:
        connection.execute(
            f"""
            COPY (
                SELECT {sql_literal(label)} AS raw_key, line,
                       string_agg(error_type, '; ' ORDER BY column_idx) AS error_type,
                       string_agg(coalesce(column_name, ''), '; ' ORDER BY column_idx) AS "column",
                       string_agg(error_message, '; ' ORDER BY column_idx) AS reason,
                       coalesce(any_value(csv_line), '') AS raw_line
                FROM reject_errors GROUP BY line ORDER BY line
            ) TO {sql_literal(str(destination))} (FORMAT csv, HEADER true)
            """
        )
    return int(count)


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


@dataclass(frozen=True)
class PublishedPartition:
    """The bronze manifest: what a build published, so that a later run can tell the object is still it."""

    key: str
    size: int
    last_modified: str
    rows: int

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()


def read_published(store: ObjectStore, table: str, year: int) -> PublishedPartition | None:
    """The bronze manifest of a year; None when there is none or it cannot be read (both mean: rebuild)."""
    try:
        return PublishedPartition(**json.loads(store.get_bytes(layout.bronze_manifest_key(table, year))))
    except (StoreError, ValueError, TypeError):
        return None


def stored_object(store: ObjectStore, key: str) -> StoredObject | None:
    return next((stored for stored in store.list(key) if stored.key == key), None)


def partition_damage(store: ObjectStore, table: str, year: int) -> str | None:
    """Why the stored bronze year is not what its build published (missing, unreadable, replaced, cut short),
    or None when it is whole. Costs a listing, a small JSON read and the Parquet footer, never the data."""
    key = layout.bronze_data_key(table, year)
    uri = store.uri(key)
    stored = stored_object(store, key)
    if stored is None:
        return f"{uri} is missing"
    published = read_published(store, table, year)
    if published is None:
        return f"{uri} has no readable bronze manifest ({layout.MANIFEST}): its build did not finish"
    if stored.size != published.size or stored.last_modified.isoformat() != published.last_modified:
        return (
            f"{uri} is not the object its build published ({stored.size} bytes, modified "
            f"{stored.last_modified.isoformat()}; published: {published.size} bytes at {published.last_modified})"
        )
    try:
        rows = open_parquet(store, key).metadata.num_rows
    except (OSError, pa.ArrowException) as error:
        return f"{uri} is not readable Parquet: {error}"
    if rows != published.rows:
        return f"{uri} has {rows} rows in its footer but its build published {published.rows}"
    return None


def repair_hint(table: str, year: int) -> str:
    """The command that rebuilds a damaged year: a normal materialization, since bronze verifies what it skips."""
    return f"dagster asset materialize -m boston_lake.definitions --select bronze/{table} --partition {year}"


def open_parquet(store: ObjectStore, key: str) -> pq.ParquetFile:
    filesystem, base = store.arrow_filesystem()
    return pq.ParquetFile(filesystem.open_input_file(f"{base}/{key}"))


class BronzeZone:
    def __init__(
        self,
        raw_store: ObjectStore,
        lake_store: ObjectStore,
        log: Log,
        settings: ConverterSettings = ConverterSettings(),
    ):
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
        with self._workspace(table, year) as work:
            reason = "forced rebuild" if force else "new raw file or converter version"
            if not force and self.lake_store.exists(key):
                damage = partition_damage(self.lake_store, table.name, year)
                if damage is None:
                    current = self._current(table, year, key, manifest)
                    if current:
                        return current
                else:
                    self.log.warning(f"{table.name} {year}: rebuilding a damaged partition: {damage}")
                    reason = f"repaired: {damage}"
            conversion, preview, size = self._convert_and_publish(table, year, key, manifest, work)
            self._remove_strays(table, year, key)
        if conversion.encoding_repaired_rows:
            self.log.warning(
                f"{table.name} {year}: {conversion.encoding_repaired_rows} rows had bytes that are not UTF-8 "
                "and were decoded as Windows-1252"
            )
        if conversion.rejects:
            self.log.warning(
                f"{table.name} {year}: {conversion.rejects} rows could not be parsed; "
                f"kept with reasons in {self.lake_store.uri(layout.bronze_rejects_key(table.name, year))}"
            )
        return BronzePartition(
            table=table.name,
            year=year,
            key=key,
            rows=conversion.rows,
            rejects=conversion.rejects,
            bytes=size,
            schema=conversion.schema,
            generation=conversion.generation.name,
            raw_key=manifest.key,
            raw_sha256=manifest.sha256,
            raw_data_rows=manifest.data_rows,
            encoding_repaired_rows=conversion.encoding_repaired_rows,
            changed=True,
            reason=reason,
            preview=preview,
        )

    def _convert_json_lines(
        self, table: LakeTable, manifest: RawManifest, source: Path, destination: Path, rejects: Path
    ) -> Conversion:
        generation = table.match_generation(manifest.header)
        rows, rejected = convert_json_lines(
            source,
            destination,
            generation,
            manifest.header,
            rejects_destination=rejects,
            source_label=manifest.key,
            kv_metadata=self._kv_metadata(manifest),
            settings=self.settings,
        )
        return Conversion(rows, rejected, generation, pq.read_schema(destination))

    @contextmanager
    def _workspace(self, table: LakeTable, year: int) -> Iterator[Workspace]:
        """The year's staging folder, claimed: a second build of it fails at once, a killed one's debris goes."""
        try:
            with self.lake_store.workspace(f"bronze.{table.name}.{year}") as work:
                if work.swept:
                    self.log.warning(f"{table.name} {year}: removed what a killed run left: {', '.join(work.swept)}")
                yield work
        except WorkBusy as busy:
            raise BronzeError(f"{table.name} {year}: {busy}") from busy

    def _convert_and_publish(
        self, table: LakeTable, year: int, key: str, manifest: RawManifest, work: Workspace
    ) -> tuple[Conversion, list[dict[str, Any]], int]:
        rejects_key = layout.bronze_rejects_key(table.name, year)
        with (
            self.raw_store.reading(manifest.key) as raw_path,
            work.file(".parquet") as staged,
            work.file(".csv") as rejects,
        ):
            try:
                if manifest.format == JSON_LINES:
                    conversion = self._convert_json_lines(table, manifest, raw_path, staged, rejects)
                else:
                    conversion = convert_csv(
                        raw_path,
                        staged,
                        table,
                        rejects_destination=rejects,
                        source_label=manifest.key,
                        repair=manifest.invalid_utf8_rows > 0,
                        kv_metadata=self._kv_metadata(manifest),
                        settings=self.settings,
                        work_dir=work.folder,
                    )
            except (CsvFormatError, HeaderMismatch, BronzeError, duckdb.Error) as error:
                raise BronzeError(f"{table.name} {year}: {self.raw_store.uri(manifest.key)}: {error}") from error
            preview = _preview(staged)
            size = staged.stat().st_size
            # The rejects go first: a reader who sees the new data also finds its rejects beside it. The
            # bronze manifest goes last: until it describes the new object, a re-run rebuilds the year.
            if conversion.rejects:
                self.lake_store.publish(rejects, rejects_key)
            else:
                self.lake_store.delete(rejects_key)
            self.lake_store.publish(staged, key)
        published = stored_object(self.lake_store, key)
        if published is None:
            raise BronzeError(f"{table.name} {year}: {self.lake_store.uri(key)} vanished right after publishing")
        record = PublishedPartition(key, published.size, published.last_modified.isoformat(), conversion.rows)
        self.lake_store.put_bytes(layout.bronze_manifest_key(table.name, year), record.to_json())
        return conversion, preview, size

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
        if (
            meta.get(META_PREFIX + "raw_sha256") != manifest.sha256
            or meta.get(META_PREFIX + "converter_version") != CONVERTER_VERSION
        ):
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
