"""How the SQLite catalog reads what it is given and what it stores: names and inputs checked as Glue checks
them (InvalidInputException), and Glue dicts kept as JSON with their datetimes intact."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from boston_lake.lake.catalog import PARTITION_INPUT_KEYS, TABLE_INPUT_KEYS, CatalogError, EntityNotFound, GlueDict


def glue_name(kind: str, name: Any) -> str:
    """Glue keeps names lower-case for Hive compatibility and looks them up case-insensitively."""
    if not isinstance(name, str) or not name.strip():
        raise CatalogError(f"InvalidInputException: {kind} name {name!r} must be a non-empty string")
    return name.lower()


def checked_table_input(table_input: GlueDict) -> GlueDict:
    unknown = sorted(set(table_input) - set(TABLE_INPUT_KEYS))
    if unknown:
        raise CatalogError(
            f"InvalidInputException: TableInput for {table_input.get('Name')!r} has keys {unknown} that "
            f"TableInput does not have (allowed: {', '.join(TABLE_INPUT_KEYS)})"
        )
    return {**table_input, "Name": glue_name("table", table_input.get("Name"))}


def table_of(database: str, table_input: GlueDict, version: int, created: datetime, updated: datetime) -> GlueDict:
    """The `Table` dict GetTable returns for this definition."""
    return {
        **table_input,
        "DatabaseName": database,
        "CreateTime": created,
        "UpdateTime": updated,
        "IsRegisteredWithLakeFormation": False,
        "VersionId": str(version),
    }


def raise_missing(
    action: str, database: str, table: str, wanted: list[list[str]], existing: dict[tuple[str, ...], GlueDict]
) -> None:
    missing = [given for given in wanted if tuple(given) not in existing]
    if missing:
        raise EntityNotFound(
            f"EntityNotFoundException: partitions {missing} of {database}.{table} do not exist; "
            f"the other {len(wanted) - len(missing)} were {action}"
        )


def partition_values(database: str, table: str, values: Any) -> list[str]:
    if not isinstance(values, list) or not values or not all(isinstance(value, str) for value in values):
        raise CatalogError(
            f"InvalidInputException: partition values {values!r} of {database}.{table} must be a non-empty list "
            "of strings"
        )
    return values


def checked_partition_input(database: str, table: str, keys: list[str], partition_input: GlueDict) -> GlueDict:
    unknown = sorted(set(partition_input) - set(PARTITION_INPUT_KEYS))
    if unknown:
        raise CatalogError(
            f"InvalidInputException: PartitionInput {partition_input.get('Values')!r} of {database}.{table} has "
            f"keys {unknown} that PartitionInput does not have (allowed: {', '.join(PARTITION_INPUT_KEYS)})"
        )
    values = partition_values(database, table, partition_input.get("Values"))
    if len(values) != len(keys):
        raise CatalogError(
            f"InvalidInputException: partition values {values} of {database}.{table} do not match its "
            f"partition keys {keys}"
        )
    return partition_input


def check_unique(database: str, table: str, values: list[list[str]]) -> None:
    seen = [json.dumps(given) for given in values]
    repeated = sorted({given for given in seen if seen.count(given) > 1})
    if repeated:
        raise CatalogError(
            f"InvalidInputException: the batch names partitions {repeated} of {database}.{table} more than once"
        )


_DATETIME = "$datetime"


def dumps(value: GlueDict) -> str:
    """JSON with Glue's datetimes kept as datetimes (tagged), so they come back as boto3 would return them."""

    def encode(item: Any) -> Any:
        if isinstance(item, datetime):
            return {_DATETIME: item.isoformat()}
        raise CatalogError(
            f"InvalidInputException: {type(item).__name__} value {item!r} cannot be stored in the catalog"
        )

    return json.dumps(value, default=encode, sort_keys=True)


def loads(body: str) -> GlueDict:
    def decode(item: dict[str, Any]) -> Any:
        if len(item) == 1 and _DATETIME in item:
            return datetime.fromisoformat(item[_DATETIME])
        return item

    return json.loads(body, object_hook=decode)
