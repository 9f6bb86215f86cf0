"""The bronze zone: each raw file as typed, zstd-compressed Parquet, one object per year.

DuckDB streams the CSV into Parquet in bounded memory and hands back every row it could not parse, with
the line and the reason, so nothing is dropped silently. A partition is a single object published in one
step, so readers see the previous year or the new one, never a mix, and a crash leaves the old one whole.
A year is published through the partition protocol (lake/zones/publish.py): its staged version must have every
case id once and reconcile with the raw file's data rows, and may not shrink beyond the limit, or it is refused.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
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
from boston_lake.lake.memory import release_freed_memory, use_returnable_memory
from boston_lake.lake.settings import DUCKDB_MEMORY_LIMIT
from boston_lake.lake.source.csvscan import CsvFormatError, read_header, repair_encoding
from boston_lake.lake.source.manifest import JSON_LINES, RawManifest, read_manifest
from boston_lake.lake.stores import ObjectStore, StoreError, WorkBusy, Workspace
from boston_lake.lake.tables import HeaderMismatch, LakeTable, SchemaGeneration
from boston_lake.lake.zones.bronze_json import convert_json_lines
from boston_lake.lake.zones.bronze_quality import (
    META_PREFIX,
    PartitionFacts,
    bookkeeping_key,
    bronze_audits,
    facts_of,
    stored_rejects,
)
from boston_lake.lake.zones.publish import (
    DEFAULT_GUARD,
    AcceptedShrink,
    AuditFailure,
    Census,
    ObjectRecord,
    PartitionBuild,
    ShrinkGuard,
    Staged,
    footer_metadata,
    open_parquet,
    publish_partition,
    sha256_of_file,
    sha256_of_object,
    stored_object,
)

# Bump when the same raw file would convert differently, so that existing partitions are rebuilt.
CONVERTER_VERSION = "1"
BRONZE_ZONE = "bronze"
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
        connection = connect(
            memory_limit=self.memory_limit,
            threads=self.threads,
            preserve_insertion_order=self.preserve_insertion_order,
            temp_directory=temp_directory,
        )
        return connection


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
    shrink_accepted: AcceptedShrink | None = None  # a shrink beyond the limit this build was told to accept

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
            **({"shrink_accepted": self.shrink_accepted.metadata()} if self.shrink_accepted else {}),
        }


@dataclass(frozen=True)
class PublishedPartition:
    """The bronze manifest: what a build published, so that a later run can tell the object is still it.

    The object is known by its content (`sha256`); its size and time as listed right after publishing let a check
    skip reading an object nothing has written since. A manifest without `sha256` (written before it was
    recorded) is verified by reading the object whole."""

    key: str
    size: int
    last_modified: str
    rows: int
    sha256: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @property
    def record(self) -> ObjectRecord:
        return ObjectRecord(self.key, self.size, self.last_modified, self.sha256)


def read_published(store: ObjectStore, table: str, year: int) -> PublishedPartition | None:
    """The bronze manifest of a year; None when there is none or it cannot be read (both mean: rebuild)."""
    try:
        key = bookkeeping_key(store, layout.bronze_manifest_key(table, year))
        return PublishedPartition(**json.loads(store.get_bytes(key)))
    except (StoreError, ValueError, TypeError):
        return None


def partition_damage(store: ObjectStore, table: str, year: int) -> str | None:
    """Why the stored bronze year is not what its build published (missing, unreadable, replaced, cut short),
    or None when it is whole. Costs a listing, a small JSON read and the Parquet footer while the object is
    untouched since its build; an object with another time (a lake copied with `cp -r` or restored from a tar) is
    read once and known by its content, so a copy is whole and a replaced object is not."""
    key = layout.bronze_data_key(table, year)
    uri = store.uri(key)
    stored = stored_object(store, key)
    if stored is None:
        return f"{uri} is missing"
    published = read_published(store, table, year)
    if published is None:
        return f"{uri} has no readable bronze manifest ({layout.MANIFEST}): its build did not finish"
    if stored.size != published.size:
        return f"{uri} is not the object its build published ({stored.size} bytes; published: {published.size} bytes)"
    try:
        if not published.record.untouched(stored):
            if published.sha256 is not None:
                content = sha256_of_object(store, key)
                if content != published.sha256:
                    return (
                        f"{uri} is not the object its build published (its content's sha256 is {content[:12]}; "
                        f"published: {published.sha256[:12]})"
                    )
            else:  # a manifest from before content identity: the object must read whole
                open_parquet(store, key).read()
        rows = open_parquet(store, key).metadata.num_rows
    except (OSError, pa.ArrowException) as error:
        return f"{uri} is not readable Parquet: {error}"
    if rows != published.rows:
        return f"{uri} has {rows} rows in its footer but its build published {published.rows}"
    return None


def years_laid_out_before_meta(store: ObjectStore, table: str) -> list[int]:
    """The years whose manifest or rejects are still beside the data, where a lake before `_meta/` kept them."""
    names = {layout.MANIFEST, layout.REJECTS}
    return sorted(
        {
            year
            for stored in store.list(layout.bronze_table_prefix(table))
            if stored.key.rsplit("/", 1)[-1] in names and (year := layout.year_of_key(stored.key)) is not None
        }
    )


def move_bookkeeping(store: ObjectStore, table: str, year: int, log: Log) -> None:
    """Move the year's manifest and rejects of a lake laid out before `_meta/` out of the table's location. The
    data object stays as it is, so the year is still known as built. Where `_meta/` already holds another version
    of a file, the one beside the data goes to `_meta/`'s `_history/`: nothing is lost."""
    for key in layout.bronze_bookkeeping_keys(table, year):
        before = layout.before_meta(key)
        old = stored_object(store, before)
        if old is None:
            continue
        destination: str | None = key
        if store.exists(key):
            content = sha256_of_object(store, before)
            folder, name = key.rsplit("/", 1)
            stamp = old.last_modified.strftime("%Y%m%dT%H%M%SZ")
            same = content == sha256_of_object(store, key)
            destination = None if same else layout.history_prefix(f"{folder}/", stamp, content) + name
        if destination is not None:
            store.copy(before, destination)
            log.info(f"{table} {year}: moved {store.uri(before)} to {store.uri(destination)}")
        store.delete(before)


def repair_hint(table: str, year: int) -> str:
    """The command that rebuilds a damaged year: a normal materialization, since bronze verifies what it skips."""
    return f"dagster asset materialize -m boston_lake.definitions --select bronze/{table} --partition {year}"


class BronzeZone:
    def __init__(
        self,
        raw_store: ObjectStore,
        lake_store: ObjectStore,
        log: Log,
        settings: ConverterSettings = ConverterSettings(),
    ):
        use_returnable_memory()
        self.raw_store = raw_store
        self.lake_store = lake_store
        self.log = log
        self.settings = settings

    def build(
        self, table: LakeTable, year: int, force: bool = False, shrink: ShrinkGuard = DEFAULT_GUARD
    ) -> BronzePartition:
        """Convert the year's raw file and publish it through the partition protocol (lake/zones/publish.py):
        raises PublishRefused when the staged year fails an audit (the published year stays)."""
        raw_prefix = layout.raw_partition_prefix(table.name, year)
        manifest = read_manifest(self.raw_store, raw_prefix + layout.MANIFEST)
        if manifest is None:
            raise BronzeError(
                f"{table.name} {year}: the raw partition {self.raw_store.uri(raw_prefix)} has not been ingested; "
                f"materialize raw/{table.name} for {year} first"
            )
        self.move_old_layout(table)
        try:
            partition = publish_partition(
                _BronzeBuild(self, table, year, manifest, force), self.log, force=force, shrink=shrink
            )
        finally:
            release_freed_memory()
        if partition.changed and partition.encoding_repaired_rows:
            self.log.warning(
                f"{table.name} {year}: {partition.encoding_repaired_rows} rows had bytes that are not UTF-8 "
                "and were decoded as Windows-1252"
            )
        if partition.changed and partition.rejects:
            self.log.warning(
                f"{table.name} {year}: {partition.rejects} rows could not be parsed; "
                f"kept with reasons in {self.lake_store.uri(layout.bronze_rejects_key(table.name, year))}"
            )
        return partition

    def move_old_layout(self, table: LakeTable) -> None:
        """Move the bookkeeping of every year of `table` that a lake laid out before `_meta/` keeps beside the data,
        each year claimed as its build claims it: so one normal run of any year moves the whole table. A year
        another run holds is left to that run, which moves it first."""
        for year in years_laid_out_before_meta(self.lake_store, table.name):
            try:
                with self.lake_store.workspace(f"{BRONZE_ZONE}.{table.name}.{year}"):  # the claim of the year's build
                    move_bookkeeping(self.lake_store, table.name, year, self.log)
            except WorkBusy:
                continue

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
            kv_metadata=kv_metadata(manifest),
            settings=self.settings,
        )
        return Conversion(rows, rejected, generation, pq.read_schema(destination))

    def convert(
        self, table: LakeTable, year: int, manifest: RawManifest, staged: Path, rejects: Path, work: Path
    ) -> Conversion:
        """The raw file of `manifest` as Parquet at `staged`, its unparseable rows at `rejects`."""
        with self.raw_store.reading(manifest.key) as raw_path:
            try:
                if manifest.format == JSON_LINES:
                    return self._convert_json_lines(table, manifest, raw_path, staged, rejects)
                return convert_csv(
                    raw_path,
                    staged,
                    table,
                    rejects_destination=rejects,
                    source_label=manifest.key,
                    repair=manifest.invalid_utf8_rows > 0,
                    kv_metadata=kv_metadata(manifest),
                    settings=self.settings,
                    work_dir=work,
                )
            except (CsvFormatError, HeaderMismatch, BronzeError, duckdb.Error) as error:
                raise BronzeError(f"{table.name} {year}: {self.raw_store.uri(manifest.key)}: {error}") from error


def kv_metadata(manifest: RawManifest) -> dict[str, str]:
    """The footer entries of a bronze year: the raw file it was built from, and the converter's version."""
    return {
        META_PREFIX + "raw_key": manifest.key,
        META_PREFIX + "raw_sha256": manifest.sha256,
        META_PREFIX + "raw_data_rows": str(manifest.data_rows),
        META_PREFIX + "converter_version": CONVERTER_VERSION,
    }


class _BronzeBuild(PartitionBuild[BronzePartition]):
    """One bronze year as the partition protocol builds it: fingerprinted by its raw file and the converter."""

    error = BronzeError

    def __init__(self, zone: BronzeZone, table: LakeTable, year: int, manifest: RawManifest, force: bool):
        super().__init__(zone.lake_store, BRONZE_ZONE, table.name, year, layout.bronze_data_key(table.name, year))
        self.bronze = zone
        self.lake_table = table
        self.manifest = manifest
        self.reason = "forced rebuild" if force else "new raw file or converter version"
        self.conversion: Conversion | None = None
        self.facts: PartitionFacts | None = None

    @property
    def label(self) -> str:
        return f"{self.table} {self.year}"

    def fingerprint(self) -> str:
        return f"raw:{self.manifest.sha256}:converter:{CONVERTER_VERSION}"

    def current(self, fingerprint: str) -> BronzePartition | None:
        """The existing partition, if it is whole and was built from this very raw file by this converter."""
        if not self.store.exists(self.data_key):
            return None
        damage = partition_damage(self.store, self.table, self.year)
        if damage is not None:
            self.bronze.log.warning(f"{self.label}: rebuilding a damaged partition: {damage}")
            self.reason = f"repaired: {damage}"
            self.published_is_baseline = False
            return None
        parquet = open_parquet(self.store, self.data_key)
        meta = footer_metadata(parquet)
        built_from = (
            f"raw:{meta.get(META_PREFIX + 'raw_sha256')}:converter:{meta.get(META_PREFIX + 'converter_version')}"
        )
        if built_from != fingerprint:
            return None
        schema = parquet.schema_arrow
        stored = stored_object(self.store, self.data_key)
        return BronzePartition(
            table=self.table,
            year=self.year,
            key=self.data_key,
            rows=parquet.metadata.num_rows,
            rejects=stored_rejects(self.store, self.table, self.year),
            bytes=stored.size if stored else 0,
            schema=schema,
            generation=self.lake_table.match_generation(schema.names).name,
            raw_key=self.manifest.key,
            raw_sha256=self.manifest.sha256,
            raw_data_rows=self.manifest.data_rows,
            encoding_repaired_rows=0,
            changed=False,
            reason="already built from this raw file (same sha256) by this converter version",
            preview=_preview_rows(parquet),
        )

    def stage(self, work: Workspace, fingerprint: str) -> Staged:
        staged, rejects = work.folder / "staged.parquet", work.folder / layout.REJECTS
        self.conversion = self.bronze.convert(self.lake_table, self.year, self.manifest, staged, rejects, work.folder)
        self.facts = facts_of(
            pq.ParquetFile(staged), self.lake_table, self.year, self.data_key, self.conversion.rejects, self.manifest
        )
        return Staged(path=staged, side_files={layout.REJECTS: rejects} if self.conversion.rejects else {})

    def id_column(self, schema: pa.Schema) -> str | None:
        return self.lake_table.match_generation(schema.names).id_column

    def audits(self, staged: Staged, published: Census | None) -> list[AuditFailure]:
        assert self.facts is not None, "staged first"
        return bronze_audits(self.facts, published)

    def publish(self, staged: Staged, accepted: AcceptedShrink | None) -> BronzePartition:
        assert staged.path is not None and self.conversion is not None, "staged first"
        conversion, rejects_key = self.conversion, layout.bronze_rejects_key(self.table, self.year)
        preview = _preview(staged.path)
        size, content = staged.path.stat().st_size, sha256_of_file(staged.path)
        # The rejects go first: a reader who sees the new data also finds its rejects beside it. The bronze
        # manifest goes last: until it describes the new object, a re-run rebuilds the year.
        if layout.REJECTS in staged.side_files:
            self.store.publish(staged.side_files[layout.REJECTS], rejects_key)
        else:
            self.store.delete(rejects_key)
        self.store.publish(staged.path, self.data_key)
        published = stored_object(self.store, self.data_key)
        if published is None:
            raise BronzeError(f"{self.label}: {self.store.uri(self.data_key)} vanished right after publishing")
        record = PublishedPartition(
            self.data_key, published.size, published.last_modified.isoformat(), conversion.rows, content
        )
        self.store.put_bytes(layout.bronze_manifest_key(self.table, self.year), record.to_json())
        return BronzePartition(
            table=self.table,
            year=self.year,
            key=self.data_key,
            rows=conversion.rows,
            rejects=conversion.rejects,
            bytes=size,
            schema=conversion.schema,
            generation=conversion.generation.name,
            raw_key=self.manifest.key,
            raw_sha256=self.manifest.sha256,
            raw_data_rows=self.manifest.data_rows,
            encoding_repaired_rows=conversion.encoding_repaired_rows,
            changed=True,
            reason=self.reason,
            preview=preview,
            shrink_accepted=accepted,
        )


def _preview(path: Path) -> list[dict[str, Any]]:
    return _preview_rows(pq.ParquetFile(path))


def _preview_rows(parquet: pq.ParquetFile) -> list[dict[str, Any]]:
    batches: Iterator[pa.RecordBatch] = parquet.iter_batches(batch_size=PREVIEW_ROWS)
    first = next(batches, None)
    return first.to_pylist() if first is not None else []
