"""Schema scanning: what a prefix of Parquet files holds, read from the files' footers alone.

Hive folders `key=value` become string partition keys, other folder levels `partition_<n>` as Glue names
them; each file's columns are mapped to Glue/Athena types as awswrangler maps them. Nothing is written.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from boston_lake.lake import layout
from boston_lake.lake.catalog.schema_merge import Column, Values
from boston_lake.lake.errors import LakeError
from boston_lake.lake.stores import ObjectStore, StoredObject

_FOOTER_READERS = 16


class CrawlError(LakeError, RuntimeError):
    """The crawl cannot describe the data; the message names the table, file or setting at fault."""


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
class DataFile:
    key: str
    size: int
    rows: int
    columns: tuple[Column, ...]


@dataclass
class ScannedPartition:
    values: Values
    location: str
    files: list[DataFile]

    @property
    def rows(self) -> int:
        return sum(data_file.rows for data_file in self.files)

    @property
    def size(self) -> int:
        return sum(data_file.size for data_file in self.files)


@dataclass
class ScannedTable:
    name: str
    location: str
    partition_keys: list[str]
    partitions: list[ScannedPartition]
    foreign: list[str]
    damaged: dict[Values, str]  # partitions with a file that is not readable Parquet, and why

    @property
    def rows(self) -> int:
        return sum(partition.rows for partition in self.partitions)


def scan_table(store: ObjectStore, table: str, prefix: str) -> ScannedTable:
    """The Parquet files under `prefix` read as one table: its partition keys and, per partition, each file's
    rows and columns from its footer alone."""
    found, foreign = data_objects(store, prefix)
    location = _folder_uri(store, prefix)
    folders = {stored.key: stored.key[len(prefix) :].split("/")[:-1] for stored in found}
    keys, values_of = _partition_layout(table, store, folders)
    files, unreadable = _read_footers(store, table, found, keys)
    # One unreadable file makes its whole partition damaged: registering the rest would undercount it.
    damaged = {values_of[key]: why for key, why in unreadable.items()}
    partitions: dict[Values, ScannedPartition] = {}
    for data_file in files:
        values = values_of[data_file.key]
        if values in damaged:
            continue
        if values not in partitions:
            folder = "".join(f"{name}/" for name in folders[data_file.key])
            partitions[values] = ScannedPartition(values, location + folder, [])
        partitions[values].files.append(data_file)
    return ScannedTable(table, location, keys, [partitions[v] for v in sorted(partitions)], foreign, damaged)


def _read_footers(
    store: ObjectStore, table: str, found: list[StoredObject], partition_keys: list[str]
) -> tuple[list[DataFile], dict[str, str]]:
    """The footers of `found`, and the keys of the files that are not readable Parquet, with the reason."""
    filesystem, base = store.arrow_filesystem()

    def read(stored: StoredObject) -> DataFile | str:
        uri = store.uri(stored.key)
        try:
            with filesystem.open_input_file(f"{base}/{stored.key}") as source:
                parquet = pq.ParquetFile(source)
                schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
        except (OSError, pa.ArrowException) as error:
            return f"{uri} is not a readable Parquet file: {error}"
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
                raise CrawlError(f"table {table}: {uri}: column {arrow_field.name!r}: {error}") from error
        return DataFile(stored.key, stored.size, rows, tuple(columns))

    if not found:
        return [], {}
    ordered = sorted(found, key=lambda stored: stored.key)
    with ThreadPoolExecutor(max_workers=min(_FOOTER_READERS, len(found))) as pool:
        results = list(pool.map(read, ordered))
    files = [result for result in results if isinstance(result, DataFile)]
    unreadable = {
        stored.key: result for stored, result in zip(ordered, results, strict=True) if isinstance(result, str)
    }
    return files, unreadable


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
