"""The Glue Data Catalog behind the Catalog protocol (the managed Glue crawler is glue_crawler.py).

The catalog speaks Glue's own shapes (TableInput, PartitionInput, ...), so what the lake's crawler
registers here is exactly what the local catalog stores. The batch calls are chunked to Glue's limits and
their per-entry errors, which Glue reports without raising, are never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from boston_lake.lake import layout
from boston_lake.lake.aws.s3 import LockHeld, S3ObjectStore
from boston_lake.lake.aws.session import describe_error, error_code
from boston_lake.lake.catalog import (
    AlreadyExists,
    CatalogError,
    CrawlerRunning,
    EntityNotFound,
    GlueDict,
)

# The Glue API's own limits per call: the batch methods split what they are given into calls of this size.
MAX_PARTITIONS_PER_CREATE = 100  # BatchCreatePartition
MAX_PARTITIONS_PER_UPDATE = 100  # BatchUpdatePartition
MAX_PARTITIONS_PER_DELETE = 25  # BatchDeletePartition
LOCK_PREFIX = f"{layout.LOCKS_PREFIX}crawler/"
DEFAULT_LOCK_TTL_SECONDS = 6 * 3600
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ERRORS_SHOWN = 10


class GlueApi:
    """One Glue client, with the account's catalog id on every call and AWS errors as catalog errors."""

    def __init__(self, client: Any, catalog_id: str | None = None):
        self.client = client
        self.catalog_id = catalog_id

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "CatalogId": self.catalog_id} if self.catalog_id else params

    def call(self, what: str, operation: str, *, tolerate: str = "", **params: Any) -> dict[str, Any]:
        """Call `operation`; an error whose code is `tolerate` counts as done (an empty answer)."""
        try:
            return getattr(self.client, operation)(**self._params(params))
        except ClientError as error:
            if tolerate and error_code(error) == tolerate:
                return {}
            raise _catalog_error(what, error) from error
        except BotoCoreError as error:
            raise CatalogError(f"{what} failed: {error}") from error

    def items(self, what: str, operation: str, result_key: str, **params: Any) -> Iterator[GlueDict]:
        try:
            for page in self.client.get_paginator(operation).paginate(**self._params(params)):
                yield from page.get(result_key, [])
        except ClientError as error:
            raise _catalog_error(what, error) from error
        except BotoCoreError as error:
            raise CatalogError(f"{what} failed: {error}") from error

    def partitions(self, database: str, table: str, years: Iterable[str | int] | None) -> list[GlueDict]:
        what = f"listing partitions of {database}.{table}"
        if years is None:
            return list(self.items(what, "get_partitions", "Partitions", DatabaseName=database, TableName=table))
        wanted = sorted({str(year) for year in years})
        if not wanted:
            return []
        quoted = []
        for value in wanted:
            if "'" in value:
                raise CatalogError(f"{what}: partition value {value!r} contains a quote")
            quoted.append(f"'{value}'")
        key = self._first_partition_key(database, table)
        expression = f"{key} IN ({', '.join(quoted)})"
        partitions = self.items(
            what, "get_partitions", "Partitions", DatabaseName=database, TableName=table, Expression=expression
        )
        return list(partitions)

    def _first_partition_key(self, database: str, table: str) -> str:
        what = f"reading table {database}.{table}"
        definition = self.call(what, "get_table", DatabaseName=database, Name=table)["Table"]
        keys = definition.get("PartitionKeys") or []
        if not keys:
            raise CatalogError(f"table {database}.{table} has no partition keys, so it cannot be filtered by year")
        name = keys[0]["Name"]
        if not _COLUMN_NAME.fullmatch(name):
            raise CatalogError(f"table {database}.{table}: partition key {name!r} cannot be used in a Glue expression")
        return name


def _catalog_error(what: str, error: ClientError) -> CatalogError:
    if error_code(error) == "EntityNotFoundException":
        return EntityNotFound(f"{what}: {describe_error(error)}")
    if error_code(error) == "AlreadyExistsException":
        return AlreadyExists(f"{what}: {describe_error(error)}")
    return CatalogError(f"{what} failed: {describe_error(error)}")


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _describe_entry_errors(errors: list[GlueDict], values_key: str) -> str:
    shown = [
        f"{entry.get(values_key)}: {entry['ErrorDetail'].get('ErrorCode')}: {entry['ErrorDetail'].get('ErrorMessage')}"
        for entry in errors[:_ERRORS_SHOWN]
    ]
    more = f" and {len(errors) - _ERRORS_SHOWN} more" if len(errors) > _ERRORS_SHOWN else ""
    return "; ".join(shown) + more


def _raise_entry_errors(what: str, errors: list[GlueDict], values_key: str, applied: int) -> None:
    """Glue reports a batch's failed entries without raising; the caller raises for them once all were sent."""
    if not errors:
        return
    message = f"{what}: {_describe_entry_errors(errors, values_key)}; the other {applied} were applied"
    codes = {entry["ErrorDetail"].get("ErrorCode") for entry in errors}
    if codes == {"EntityNotFoundException"}:
        raise EntityNotFound(message)
    if codes == {"AlreadyExistsException"}:
        raise AlreadyExists(message)
    raise CatalogError(message)


class GlueCatalog:
    """The Catalog protocol over the Glue API; `crawl_lock` is a lease object in the lake bucket."""

    def __init__(
        self,
        client: Any,
        lock_store: S3ObjectStore,
        *,
        catalog_id: str | None = None,
        lock_ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS,
    ):
        self._api = GlueApi(client, catalog_id)
        self.client = client
        self.catalog_id = catalog_id
        self.lock_store = lock_store
        self.lock_ttl_seconds = lock_ttl_seconds

    def __repr__(self) -> str:
        return f"GlueCatalog({self.uri()!r})"

    def uri(self) -> str:
        """glue://<region>/<catalog id>, or glue://<region> for the caller's own account's catalog."""
        base = f"glue://{self.client.meta.region_name}"
        return f"{base}/{self.catalog_id}" if self.catalog_id else base

    def create_database(self, name: str, description: str = "") -> None:
        self._api.call(
            f"creating database {name}",
            "create_database",
            tolerate="AlreadyExistsException",
            DatabaseInput={"Name": name, "Description": description},
        )

    def list_databases(self) -> list[GlueDict]:
        return list(self._api.items("listing databases", "get_databases", "DatabaseList"))

    def get_table(self, database: str, name: str) -> GlueDict | None:
        try:
            found = self._api.call(f"reading table {database}.{name}", "get_table", DatabaseName=database, Name=name)
        except EntityNotFound:
            # Glue answers the same code for a missing database: ask which it was (raises when the database is).
            self._api.call(f"reading database {database}", "get_database", Name=database)
            return None
        return found["Table"]

    def list_tables(self, database: str) -> list[GlueDict]:
        return list(self._api.items(f"listing tables of {database}", "get_tables", "TableList", DatabaseName=database))

    def create_table(self, database: str, table_input: GlueDict) -> None:
        name = table_input.get("Name")
        what = f"creating table {database}.{name}"
        self._api.call(what, "create_table", DatabaseName=database, TableInput=table_input)

    def update_table(self, database: str, table_input: GlueDict) -> None:
        """Glue archives the previous definition as a table version (SkipArchive=False, stated, not assumed)."""
        name = table_input.get("Name")
        what = f"updating table {database}.{name}"
        self._api.call(what, "update_table", DatabaseName=database, TableInput=table_input, SkipArchive=False)

    def delete_table(self, database: str, name: str) -> None:
        self._api.call(f"deleting table {database}.{name}", "delete_table", DatabaseName=database, Name=name)

    def get_table_versions(self, database: str, name: str) -> list[GlueDict]:
        versions = self._api.items(
            f"listing versions of table {database}.{name}",
            "get_table_versions",
            "TableVersions",
            DatabaseName=database,
            TableName=name,
        )
        return sorted(versions, key=lambda version: int(version["VersionId"]), reverse=True)

    def get_partitions(self, database: str, table: str, years: Iterable[str] | None = None) -> list[GlueDict]:
        """Filtered by Glue itself (Expression `<first key> IN (...)`), not by fetching every partition."""
        return self._api.partitions(database, table, years)

    def batch_create_partitions(self, database: str, table: str, partition_inputs: list[GlueDict]) -> None:
        self._batch(
            f"creating partitions of {database}.{table}",
            "batch_create_partition",
            "PartitionInputList",
            partition_inputs,
            MAX_PARTITIONS_PER_CREATE,
            "PartitionValues",
            DatabaseName=database,
            TableName=table,
        )

    def batch_update_partitions(self, database: str, table: str, partition_inputs: list[GlueDict]) -> None:
        self._batch(
            f"updating partitions of {database}.{table}",
            "batch_update_partition",
            "Entries",
            [{"PartitionValueList": entry["Values"], "PartitionInput": entry} for entry in partition_inputs],
            MAX_PARTITIONS_PER_UPDATE,
            "PartitionValueList",
            DatabaseName=database,
            TableName=table,
        )

    def batch_delete_partitions(self, database: str, table: str, values: list[list[str]]) -> None:
        self._batch(
            f"deleting partitions of {database}.{table}",
            "batch_delete_partition",
            "PartitionsToDelete",
            [{"Values": list(value)} for value in values],
            MAX_PARTITIONS_PER_DELETE,
            "PartitionValues",
            DatabaseName=database,
            TableName=table,
        )

    def _batch(
        self,
        what: str,
        operation: str,
        entries_parameter: str,
        entries: list[GlueDict],
        limit: int,
        values_key: str,
        **params: Any,
    ) -> None:
        """Send every entry in calls of at most `limit`, then raise for the entries Glue refused."""
        errors: list[GlueDict] = []
        for chunk in _chunks(entries, limit):
            request: dict[str, Any] = {**params, entries_parameter: chunk}
            response = self._api.call(what, operation, **request)
            errors.extend(response.get("Errors", []))
        _raise_entry_errors(what, errors, values_key, len(entries) - len(errors))

    @contextmanager
    def crawl_lock(self, crawler: str) -> Iterator[None]:
        with ExitStack() as held:
            try:
                held.enter_context(
                    self.lock_store.lock(f"{LOCK_PREFIX}{crawler}.json", ttl_seconds=self.lock_ttl_seconds)
                )
            except LockHeld as busy:
                raise CrawlerRunning(f"crawler {crawler!r} is already crawling {self.uri()}: {busy}") from busy
            yield
