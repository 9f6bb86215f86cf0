"""A Glue crawler for the lake's Parquet prefixes, over any object store and any catalog.

It does what an AWS Glue crawler does on an S3 prefix: Hive folders become string partition keys, each
Parquet file's schema and row count come from its footer alone, partitions' schemas merge into one table
(new columns appended, int widened to bigint and float to double as Athena reads them), statistics go into
Glue's parameters, and SchemaChangePolicy decides what an existing table may have changed. Everything is
read and checked before anything is written, so a bad file fails the crawl and leaves the catalog as it was.

Choices where Glue leaves room:
- A column whose types cannot be widened into one (string in one partition, bigint in another) is a
  conflict: it is reported, never coerced. The table keeps the type it already has (as Glue does), and a
  column new to the table takes the type of the first partition, in partition order, that has it. Each
  partition keeps its own columns and types in its own StorageDescriptor.
- UpdateBehavior LOG freezes what exists: the table definition (columns, statistics) and existing partitions
  stay as they are and what would have changed is logged. New tables and new partitions are still created,
  as Glue does whatever the policy ("New tables and partitions are always created").
- DeleteBehavior DEPRECATE_IN_DATABASE marks a table whose prefix holds no data any more with
  DEPRECATED_BY_CRAWLER=<epoch milliseconds> (what Glue writes); partitions whose folders vanished are
  removed under both DEPRECATE_IN_DATABASE and DELETE_FROM_DATABASE, and only logged under LOG.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from boston_lake.lake import layout
from boston_lake.lake.catalog import (
    PARTITION_INPUT_KEYS,
    TABLE_INPUT_KEYS,
    Catalog,
    GlueDict,
)
from boston_lake.lake.log import Log
from boston_lake.lake.stores import ObjectStore, StoredObject

DEFAULT_CRAWLER_NAME = "boston_lake_bronze"
UPDATE_IN_DATABASE = "UPDATE_IN_DATABASE"
LOG = "LOG"
DEPRECATE_IN_DATABASE = "DEPRECATE_IN_DATABASE"
DELETE_FROM_DATABASE = "DELETE_FROM_DATABASE"
DEPRECATED_BY_CRAWLER = "DEPRECATED_BY_CRAWLER"

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

# Types Athena reads as a wider one when partitions disagree (Athena's "compatible data types").
_WIDENING = (("tinyint", "smallint", "int", "bigint"), ("float", "double"))
_TABLE_NAME = re.compile(r"^[a-z0-9_]+$")
_FOOTER_READERS = 16

Values = tuple[str, ...]
Column = tuple[str, str]
T = TypeVar("T")


class CrawlError(RuntimeError):
    """The crawl cannot describe the data; the message names the table, file or setting at fault."""


@dataclass(frozen=True)
class SchemaChangePolicy:
    update_behavior: str = UPDATE_IN_DATABASE
    delete_behavior: str = DEPRECATE_IN_DATABASE

    def __post_init__(self) -> None:
        if self.update_behavior not in (UPDATE_IN_DATABASE, LOG):
            raise CrawlError(
                f"SchemaChangePolicy UpdateBehavior {self.update_behavior!r} is not one of {UPDATE_IN_DATABASE}, {LOG}"
            )
        if self.delete_behavior not in (DEPRECATE_IN_DATABASE, LOG, DELETE_FROM_DATABASE):
            raise CrawlError(
                f"SchemaChangePolicy DeleteBehavior {self.delete_behavior!r} is not one of "
                f"{DEPRECATE_IN_DATABASE}, {LOG}, {DELETE_FROM_DATABASE}"
            )


@dataclass(frozen=True)
class ColumnConflict:
    """One column with types that cannot be read as one: which partitions have which type."""

    column: str
    partitions_by_type: dict[str, list[Values]]
    table_type: str

    def describe(self) -> str:
        found = "; ".join(
            f"{glue_type} in {', '.join(_label(values) for values in partitions)}"
            for glue_type, partitions in self.partitions_by_type.items()
        )
        return f"column {self.column}: {found}; the table keeps {self.table_type}"


# What happened to a table's definition in a crawl.
CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"
DEPRECATED = "deprecated"
DELETED = "deleted"
NO_DATA = "no data"


@dataclass
class TableCrawl:
    table: str
    location: str
    action: str = UNCHANGED
    partitions_added: list[Values] = field(default_factory=list)
    partitions_updated: list[Values] = field(default_factory=list)
    partitions_removed: list[Values] = field(default_factory=list)
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    columns_retyped: list[tuple[str, str, str]] = field(default_factory=list)
    conflicts: list[ColumnConflict] = field(default_factory=list)
    skipped_objects: list[str] = field(default_factory=list)
    logged_changes: list[str] = field(default_factory=list)
    record_count: int = 0
    version_id: str | None = None

    def summary(self) -> str:
        version = f" (version {self.version_id})" if self.version_id else ""
        parts = [f"{self.table}: {self.action}{version}, {self.record_count} rows"]
        for label, partitions in (
            ("added", self.partitions_added),
            ("updated", self.partitions_updated),
            ("removed", self.partitions_removed),
        ):
            if partitions:
                parts.append(f"partitions {label} {', '.join(_label(values) for values in partitions)}")
        if self.action == CREATED:
            parts.append(f"{len(self.columns_added)} columns")
        elif self.columns_added:
            parts.append(f"columns added {', '.join(self.columns_added)}")
        if self.columns_removed:
            parts.append(f"columns removed {', '.join(self.columns_removed)}")
        if self.columns_retyped:
            parts.append(
                "columns retyped " + ", ".join(f"{name} {old}->{new}" for name, old, new in self.columns_retyped)
            )
        lines = ["; ".join(parts)]
        lines += [f"  conflict: {conflict.describe()}" for conflict in self.conflicts]
        lines += [f"  not applied: {change}" for change in self.logged_changes]
        lines += [f"  skipped non-Parquet object: {key}" for key in self.skipped_objects]
        return "\n".join(lines)


@dataclass
class CrawlResult:
    crawler: str
    database: str
    tables: list[TableCrawl]
    duration_seconds: float

    def table(self, name: str) -> TableCrawl:
        for crawl in self.tables:
            if crawl.table == name:
                return crawl
        raise KeyError(f"crawl {self.crawler} has no table {name!r}; it crawled {[t.table for t in self.tables]}")

    def summary(self) -> str:
        header = (
            f"crawler {self.crawler} -> database {self.database}: {len(self.tables)} tables "
            f"in {self.duration_seconds:.2f} s"
        )
        return "\n".join([header, *(f"- {crawl.summary()}" for crawl in self.tables)])


def classify_object(relative_key: str) -> str:
    """'data' for Parquet, 'bookkeeping' for what crawlers skip by design, 'foreign' for anything else."""
    if relative_key.endswith(("/", "_$folder$")) or layout.is_bookkeeping(relative_key):
        return "bookkeeping"
    return "data" if relative_key.endswith(".parquet") else "foreign"


def data_objects(store: ObjectStore, prefix: str) -> tuple[list[StoredObject], list[str]]:
    """The Parquet files under `prefix`, and the keys of objects there that are neither data nor bookkeeping."""
    data, foreign = [], []
    for stored in store.list(prefix):
        kind = classify_object(stored.key[len(prefix) :])
        if kind == "data":
            data.append(stored)
        elif kind == "foreign":
            foreign.append(stored.key)
    return data, foreign


def glue_type(arrow_type: pa.DataType) -> str:
    """Arrow type -> Glue/Athena type name, as awswrangler maps them; TypeError when Athena has no such type."""
    if pa.types.is_dictionary(arrow_type):
        return glue_type(arrow_type.value_type)
    for check, name in _SCALAR_TYPES:
        if check(arrow_type):
            return name
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    raise TypeError(f"Arrow type {arrow_type} has no Glue type this crawler supports")


_SCALAR_TYPES = (
    (pa.types.is_int8, "tinyint"),
    (lambda t: pa.types.is_int16(t) or pa.types.is_uint8(t), "smallint"),
    (lambda t: pa.types.is_int32(t) or pa.types.is_uint16(t), "int"),
    (lambda t: pa.types.is_int64(t) or pa.types.is_uint32(t), "bigint"),
    (pa.types.is_float32, "float"),
    (pa.types.is_float64, "double"),
    (pa.types.is_boolean, "boolean"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t), "string"),
    (pa.types.is_timestamp, "timestamp"),
    (pa.types.is_date, "date"),
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t), "binary"),
)


@dataclass(frozen=True)
class _DataFile:
    key: str
    size: int
    rows: int
    columns: tuple[Column, ...]


@dataclass
class _ScannedPartition:
    values: Values
    location: str
    files: list[_DataFile]

    @property
    def rows(self) -> int:
        return sum(data_file.rows for data_file in self.files)

    @property
    def size(self) -> int:
        return sum(data_file.size for data_file in self.files)


@dataclass
class _ScannedTable:
    name: str
    location: str
    partition_keys: list[str]
    partitions: list[_ScannedPartition]
    foreign: list[str]

    @property
    def rows(self) -> int:
        return sum(partition.rows for partition in self.partitions)


class Crawler:
    """One crawler over one store, writing one database; `crawl` is safe to run again and again."""

    def __init__(
        self,
        store: ObjectStore,
        catalog: Catalog,
        database: str,
        policy: SchemaChangePolicy = SchemaChangePolicy(),
        name: str = DEFAULT_CRAWLER_NAME,
    ):
        if not database:
            raise CrawlError("the crawler needs a database name")
        self.store = store
        self.catalog = catalog
        self.database = database
        self.policy = policy
        self.name = name

    def crawl(self, targets: Iterable[tuple[str, str]], log: Log | None = None) -> CrawlResult:
        """Crawl each (table, key prefix); raises CrawlerRunning at once if another crawl holds the catalog."""
        log = log or logging.getLogger(__name__)
        targets = _check_targets(list(targets))
        started = time.perf_counter()
        with self.catalog.crawl_lock(self.name):
            self.catalog.create_database(self.database)
            scanned = [self._scan(table, prefix) for table, prefix in targets]
            tables = [self._apply(table, log) for table in scanned]
        result = CrawlResult(self.name, self.database, tables, time.perf_counter() - started)
        log.info(result.summary())
        return result

    # Reading the store

    def _scan(self, table: str, prefix: str) -> _ScannedTable:
        found, foreign = data_objects(self.store, prefix)
        location = _folder_uri(self.store, prefix)
        folders = {stored.key: stored.key[len(prefix) :].split("/")[:-1] for stored in found}
        keys, values_of = _partition_layout(table, self.store, folders)
        files = self._read_footers(table, found, keys)
        partitions: dict[Values, _ScannedPartition] = {}
        for data_file in files:
            values = values_of[data_file.key]
            if values not in partitions:
                folder = "".join(f"{name}/" for name in folders[data_file.key])
                partitions[values] = _ScannedPartition(values, location + folder, [])
            partitions[values].files.append(data_file)
        return _ScannedTable(table, location, keys, [partitions[v] for v in sorted(partitions)], foreign)

    def _read_footers(self, table: str, found: list[StoredObject], partition_keys: list[str]) -> list[_DataFile]:
        filesystem, base = self.store.arrow_filesystem()

        def read(stored: StoredObject) -> _DataFile:
            uri = self.store.uri(stored.key)
            try:
                with filesystem.open_input_file(f"{base}/{stored.key}") as source:
                    parquet = pq.ParquetFile(source)
                    schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
            except (OSError, pa.ArrowException) as error:
                raise CrawlError(f"table {table}: {uri} is not a readable Parquet file: {error}") from None
            columns = []
            for arrow_field in schema:
                if arrow_field.name in partition_keys:
                    raise CrawlError(
                        f"table {table}: {uri} has a column {arrow_field.name!r} with the name of a partition key "
                        f"({', '.join(partition_keys)}); Athena could not tell them apart"
                    )
                try:
                    columns.append((arrow_field.name, glue_type(arrow_field.type)))
                except TypeError as error:
                    raise CrawlError(f"table {table}: {uri}: column {arrow_field.name!r}: {error}") from None
            return _DataFile(stored.key, stored.size, rows, tuple(columns))

        if not found:
            return []
        with ThreadPoolExecutor(max_workers=min(_FOOTER_READERS, len(found))) as pool:
            return list(pool.map(read, sorted(found, key=lambda stored: stored.key)))

    # Writing the catalog

    def _apply(self, scanned: _ScannedTable, log: Log) -> TableCrawl:
        crawl = TableCrawl(scanned.name, scanned.location, record_count=scanned.rows, skipped_objects=scanned.foreign)
        for key in scanned.foreign:
            log.warning(f"crawler {self.name}: table {scanned.name}: skipped {self.store.uri(key)}: not a Parquet file")
        existing = self.catalog.get_table(self.database, scanned.name)
        existing_partitions = (
            {tuple(p["Values"]): p for p in self.catalog.get_partitions(self.database, scanned.name)}
            if existing
            else {}
        )
        if not scanned.partitions:
            self._gone(scanned, existing, existing_partitions, crawl, log)
        else:
            self._found(scanned, existing, existing_partitions, crawl)
        current = self.catalog.get_table(self.database, scanned.name)
        crawl.version_id = current["VersionId"] if current else None
        for conflict in crawl.conflicts:
            log.warning(f"crawler {self.name}: table {scanned.name}: type conflict: {conflict.describe()}")
        for change in crawl.logged_changes:
            log.warning(f"crawler {self.name}: table {scanned.name}: not applied: {change}")
        return crawl

    def _found(
        self,
        scanned: _ScannedTable,
        existing: GlueDict | None,
        existing_partitions: dict[Values, GlueDict],
        crawl: TableCrawl,
    ) -> None:
        partition_inputs = {}
        for partition in scanned.partitions:
            old = existing_partitions.get(partition.values)
            columns, _ = _merge_columns(
                [(partition.values, data_file.columns) for data_file in partition.files],
                _columns(old["StorageDescriptor"]) if old else [],
            )
            partition_inputs[partition.values] = self._partition_input(partition, columns, old)
        # Merged from the files, not the partitions, so that a conflict inside one partition is reported too.
        old_columns = _columns(existing["StorageDescriptor"]) if existing else []
        columns, crawl.conflicts = _merge_columns(
            [
                (partition.values, data_file.columns)
                for partition in scanned.partitions
                for data_file in partition.files
            ],
            old_columns,
        )
        table_input = self._table_input(scanned, columns, existing)
        if existing is None:
            self.catalog.create_table(self.database, table_input)
            crawl.action = CREATED
            crawl.columns_added = [name for name, _ in columns]
        elif _table_input_of(existing) != table_input:
            changes = _column_changes(old_columns, columns)
            if self.policy.update_behavior == UPDATE_IN_DATABASE:
                self.catalog.update_table(self.database, table_input)
                crawl.action = UPDATED
                crawl.columns_added, crawl.columns_removed, crawl.columns_retyped = changes
            else:
                crawl.logged_changes.append(_describe_table_change(existing, table_input, changes))
                if existing.get("PartitionKeys", []) != table_input["PartitionKeys"]:
                    crawl.logged_changes.append(
                        f"partitions left as they were: the data is partitioned by {scanned.partition_keys}, "
                        f"the table by {[key['Name'] for key in existing.get('PartitionKeys', [])]}"
                    )
                    return
        self._sync_partitions(
            scanned.name, partition_inputs if scanned.partition_keys else {}, existing_partitions, crawl
        )

    def _sync_partitions(
        self,
        table: str,
        wanted: dict[Values, GlueDict],
        existing: dict[Values, GlueDict],
        crawl: TableCrawl,
    ) -> None:
        added = [values for values in wanted if values not in existing]
        changed = [
            values
            for values in wanted
            if values in existing and _partition_input_of(existing[values]) != wanted[values]
        ]
        if added:
            self.catalog.batch_create_partitions(self.database, table, [wanted[values] for values in added])
        crawl.partitions_added = added
        if self.policy.update_behavior == UPDATE_IN_DATABASE:
            if changed:
                self.catalog.batch_update_partitions(self.database, table, [wanted[values] for values in changed])
            crawl.partitions_updated = changed
        elif changed:
            crawl.logged_changes.append(
                f"UpdateBehavior LOG: partitions {', '.join(map(_label, changed))} changed (files, statistics or "
                "columns) and were left as they were"
            )
        self._remove_partitions(table, [values for values in existing if values not in wanted], crawl)

    def _remove_partitions(self, table: str, vanished: list[Values], crawl: TableCrawl) -> None:
        if not vanished:
            return
        if self.policy.delete_behavior == LOG:
            crawl.logged_changes.append(
                f"DeleteBehavior LOG: partitions {', '.join(map(_label, vanished))} hold no data any more and were kept"
            )
            return
        self.catalog.batch_delete_partitions(self.database, table, [list(values) for values in vanished])
        crawl.partitions_removed = vanished

    def _gone(
        self,
        scanned: _ScannedTable,
        existing: GlueDict | None,
        existing_partitions: dict[Values, GlueDict],
        crawl: TableCrawl,
        log: Log,
    ) -> None:
        """The prefix holds no data: DeleteBehavior decides what becomes of a table the catalog still has."""
        if existing is None:
            crawl.action = NO_DATA
            log.info(f"crawler {self.name}: table {scanned.name}: no Parquet data under {scanned.location}")
            return
        behavior = self.policy.delete_behavior
        if behavior == DELETE_FROM_DATABASE:
            self.catalog.delete_table(self.database, scanned.name)
            crawl.action = DELETED
            crawl.partitions_removed = sorted(existing_partitions)
        elif behavior == LOG:
            crawl.logged_changes.append(
                f"DeleteBehavior LOG: {scanned.location} holds no data any more; the table was kept"
            )
        else:
            if DEPRECATED_BY_CRAWLER not in existing.get("Parameters", {}):
                self.catalog.update_table(self.database, _deprecated(_table_input_of(existing)))
                crawl.action = DEPRECATED
            self._remove_partitions(scanned.name, sorted(existing_partitions), crawl)

    def _parameters(self, rows: int, objects: int, size: int, existing: GlueDict | None) -> dict[str, str]:
        """Glue's crawler parameters; parameters someone else set on the table are kept."""
        kept = {k: v for k, v in (existing or {}).get("Parameters", {}).items() if k != DEPRECATED_BY_CRAWLER}
        return {
            **kept,
            "classification": "parquet",
            "compressionType": "none",
            "typeOfData": "file",
            "recordCount": str(rows),
            "objectCount": str(objects),
            "sizeKey": str(size),
            "averageRecordSize": str(size // rows if rows else 0),
            "UPDATED_BY_CRAWLER": self.name,
            "CrawlerSchemaSerializerVersion": "1.0",
            "CrawlerSchemaDeserializerVersion": "1.0",
        }

    def _partition_input(self, partition: _ScannedPartition, columns: list[Column], old: GlueDict | None) -> GlueDict:
        parameters = self._parameters(partition.rows, len(partition.files), partition.size, old)
        return {
            **(_partition_input_of(old) if old else {}),
            "Values": list(partition.values),
            "StorageDescriptor": _storage_descriptor(columns, partition.location, parameters),
            "Parameters": parameters,
        }

    def _table_input(self, scanned: _ScannedTable, columns: list[Column], existing: GlueDict | None) -> GlueDict:
        objects = sum(len(partition.files) for partition in scanned.partitions)
        size = sum(partition.size for partition in scanned.partitions)
        parameters = {**self._parameters(scanned.rows, objects, size, existing), "EXTERNAL": "TRUE"}
        return {
            **(_table_input_of(existing) if existing else {}),
            "Name": scanned.name,
            "StorageDescriptor": _storage_descriptor(columns, scanned.location, parameters),
            "PartitionKeys": [{"Name": key, "Type": "string"} for key in scanned.partition_keys],
            "TableType": "EXTERNAL_TABLE",
            "Parameters": parameters,
        }


def _check_targets(targets: list[tuple[str, str]]) -> list[tuple[str, str]]:
    names = [table for table, _ in targets]
    for table, prefix in targets:
        if not isinstance(table, str) or not _TABLE_NAME.match(table):
            raise CrawlError(f"crawl target table name {table!r} must be lower-case letters, digits and underscores")
        if not isinstance(prefix, str) or not prefix.endswith("/") or prefix.startswith("/"):
            raise CrawlError(
                f"crawl target {table}: prefix {prefix!r} must be a relative folder key ending with '/', "
                "such as bronze/boston311/legacy_requests/"
            )
        if names.count(table) > 1:
            raise CrawlError(f"crawl targets name table {table!r} more than once")
    return targets


def _folder_uri(store: ObjectStore, prefix: str) -> str:
    return store.uri(prefix).rstrip("/") + "/"


def _partition_layout(
    table: str, store: ObjectStore, folders: dict[str, list[str]]
) -> tuple[list[str], dict[str, Values]]:
    """Partition keys from the folder levels, and each file's partition values.

    A level is a Hive key `name` when every folder at that level reads `name=value`; otherwise it is
    `partition_<level>` and the values are the folder names, as Glue names them.
    """
    depths: dict[int, list[str]] = {}
    for key, parts in folders.items():
        depths.setdefault(len(parts), []).append(key)
    if len(depths) > 1:
        examples = "; ".join(f"{depth} folder levels: {store.uri(keys[0])}" for depth, keys in sorted(depths.items()))
        raise CrawlError(
            f"table {table}: data files sit at different folder depths ({examples}); "
            "one table needs one partition layout"
        )
    depth = next(iter(depths), 0)
    keys = []
    for level in range(depth):
        names = {parts[level].split("=", 1)[0] if "=" in parts[level] else None for parts in folders.values()}
        hive_name = names.pop() if len(names) == 1 else None
        keys.append(hive_name or f"partition_{level}")
    values_of = {
        key: tuple(
            part.split("=", 1)[1] if keys[level] != f"partition_{level}" else part for level, part in enumerate(parts)
        )
        for key, parts in folders.items()
    }
    return keys, values_of


def _merge_columns(
    sources: Sequence[tuple[Values, Iterable[Column]]], existing: list[Column]
) -> tuple[list[Column], list[ColumnConflict]]:
    """Union of the sources' columns: existing order first, then new ones as first seen; a column no source
    has any more is dropped."""
    order = [name for name, _ in existing]
    found: dict[str, dict[str, list[Values]]] = {}
    for values, columns in sources:
        for name, column_type in columns:
            if name not in order:
                order.append(name)
            holders = found.setdefault(name, {}).setdefault(column_type, [])
            if values not in holders:
                holders.append(values)
    existing_types = dict(existing)
    merged, conflicts = [], []
    for name in order:
        if name not in found:
            continue
        types = found[name]
        widest = _widest(list(types))
        if widest is None:
            widest = existing_types.get(name) or next(iter(types))
            conflicts.append(ColumnConflict(name, types, widest))
        merged.append((name, widest))
    return merged, conflicts


def _widest(types: list[str]) -> str | None:
    if len(types) == 1:
        return types[0]
    for ladder in _WIDENING:
        if all(column_type in ladder for column_type in types):
            return max(types, key=ladder.index)
    return None


def _column_changes(old: list[Column], new: list[Column]) -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    old_types, new_types = dict(old), dict(new)
    added = [name for name in new_types if name not in old_types]
    removed = [name for name in old_types if name not in new_types]
    retyped = [
        (name, old_types[name], new_types[name])
        for name in new_types
        if name in old_types and old_types[name] != new_types[name]
    ]
    return added, removed, retyped


def _describe_table_change(
    existing: GlueDict, table_input: GlueDict, changes: tuple[list[str], list[str], list[tuple[str, str, str]]]
) -> str:
    added, removed, retyped = changes
    described = []
    if added:
        described.append(f"add columns {', '.join(added)}")
    if removed:
        described.append(f"remove columns {', '.join(removed)}")
    if retyped:
        described.append("retype " + ", ".join(f"{name} {old}->{new}" for name, old, new in retyped))
    old_parameters, new_parameters = existing.get("Parameters", {}), table_input["Parameters"]
    changed = sorted(
        k for k in set(old_parameters) | set(new_parameters) if old_parameters.get(k) != new_parameters.get(k)
    )
    if changed:
        described.append(f"update parameters {', '.join(changed)}")
    if not described:
        described.append("update the table definition")
    return f"UpdateBehavior LOG: the table was left as it was; the crawl would {'; '.join(described)}"


def _deprecated(table_input: GlueDict) -> GlueDict:
    stamp = str(int(time.time() * 1000))
    parameters = {**table_input.get("Parameters", {}), DEPRECATED_BY_CRAWLER: stamp}
    descriptor = table_input.get("StorageDescriptor", {})
    return {
        **table_input,
        "Parameters": parameters,
        "StorageDescriptor": {
            **descriptor,
            "Parameters": {**descriptor.get("Parameters", {}), DEPRECATED_BY_CRAWLER: stamp},
        },
    }


def _storage_descriptor(columns: list[Column], location: str, parameters: dict[str, str]) -> GlueDict:
    return {
        "Columns": [{"Name": name, "Type": column_type} for name, column_type in columns],
        "Location": location,
        "InputFormat": PARQUET_INPUT_FORMAT,
        "OutputFormat": PARQUET_OUTPUT_FORMAT,
        "Compressed": False,
        "NumberOfBuckets": -1,
        "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
        "BucketColumns": [],
        "SortColumns": [],
        "Parameters": parameters,
        "StoredAsSubDirectories": False,
    }


def _columns(descriptor: GlueDict) -> list[Column]:
    return [(column["Name"], column["Type"]) for column in descriptor.get("Columns", [])]


def _table_input_of(table: GlueDict) -> GlueDict:
    return {key: table[key] for key in TABLE_INPUT_KEYS if key in table}


def _partition_input_of(partition: GlueDict) -> GlueDict:
    return {key: partition[key] for key in PARTITION_INPUT_KEYS if key in partition}


def _label(values: Values) -> str:
    return "/".join(values) if values else "(unpartitioned)"
