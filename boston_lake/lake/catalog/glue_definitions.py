"""The Glue definitions a crawler writes: TableInput, PartitionInput and StorageDescriptor of Parquet data,
with the parameters and the deprecation mark AWS's crawler writes, so the local catalog looks like Glue's."""

from __future__ import annotations

import time

from boston_lake.lake.catalog import PARTITION_INPUT_KEYS, TABLE_INPUT_KEYS, GlueDict
from boston_lake.lake.catalog.scan import ScannedPartition, ScannedTable
from boston_lake.lake.catalog.schema_merge import Column

DEPRECATED_BY_CRAWLER = "DEPRECATED_BY_CRAWLER"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"


def crawler_parameters(crawler: str, rows: int, objects: int, size: int, existing: GlueDict | None) -> dict[str, str]:
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
        "UPDATED_BY_CRAWLER": crawler,
        "CrawlerSchemaSerializerVersion": "1.0",
        "CrawlerSchemaDeserializerVersion": "1.0",
    }


def partition_input(crawler: str, partition: ScannedPartition, columns: list[Column], old: GlueDict | None) -> GlueDict:
    """The PartitionInput a crawl writes: the old partition's other fields kept."""
    parameters = crawler_parameters(crawler, partition.rows, len(partition.files), partition.size, old)
    return {
        **(partition_input_of(old) if old else {}),
        "Values": list(partition.values),
        "StorageDescriptor": storage_descriptor(columns, partition.location, parameters),
        "Parameters": parameters,
    }


def table_input(
    crawler: str, scanned: ScannedTable, columns: list[Column], existing: GlueDict | None, held: list[GlueDict]
) -> GlueDict:
    """The TableInput a crawl writes: an external Parquet table; the old table's other fields kept. `held` are
    registered partitions the crawl leaves as they were (damaged): their statistics still count."""

    def held_total(parameter: str) -> int:
        return sum(int(partition.get("Parameters", {}).get(parameter, 0) or 0) for partition in held)

    rows = scanned.rows + held_total("recordCount")
    objects = sum(len(partition.files) for partition in scanned.partitions) + held_total("objectCount")
    size = sum(partition.size for partition in scanned.partitions) + held_total("sizeKey")
    parameters = {**crawler_parameters(crawler, rows, objects, size, existing), "EXTERNAL": "TRUE"}
    return {
        **(table_input_of(existing) if existing else {}),
        "Name": scanned.name,
        "StorageDescriptor": storage_descriptor(columns, scanned.location, parameters),
        "PartitionKeys": [{"Name": key, "Type": "string"} for key in scanned.partition_keys],
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
    }


def deprecated(table_input: GlueDict) -> GlueDict:
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


def storage_descriptor(columns: list[Column], location: str, parameters: dict[str, str]) -> GlueDict:
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


def columns_of(descriptor: GlueDict) -> list[Column]:
    return [(column["Name"], column["Type"]) for column in descriptor.get("Columns", [])]


def table_input_of(table: GlueDict) -> GlueDict:
    return {key: table[key] for key in TABLE_INPUT_KEYS if key in table}


def partition_input_of(partition: GlueDict) -> GlueDict:
    return {key: partition[key] for key in PARTITION_INPUT_KEYS if key in partition}
