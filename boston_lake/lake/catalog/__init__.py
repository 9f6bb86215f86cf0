"""The catalog interface: the Glue Data Catalog operations the lake needs, in Glue's own data shapes.

Tables, partitions and table versions are the dicts the Glue API takes and returns (TableInput,
StorageDescriptor, PartitionInput, ...), so the embedded SQLite catalog and the real Glue catalog are
interchangeable under the crawler and the query engines, and what one writes the other could read.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from boston_lake.lake.errors import LakeError

GlueDict = dict[str, Any]

# The fields of Glue's TableInput and PartitionInput: what a Table or Partition dict keeps when written back.
TABLE_INPUT_KEYS = (
    "Name",
    "Description",
    "Owner",
    "LastAccessTime",
    "LastAnalyzedTime",
    "Retention",
    "StorageDescriptor",
    "PartitionKeys",
    "ViewOriginalText",
    "ViewExpandedText",
    "TableType",
    "Parameters",
    "TargetTable",
)
PARTITION_INPUT_KEYS = ("Values", "LastAccessTime", "StorageDescriptor", "Parameters", "LastAnalyzedTime")


class CatalogError(LakeError, RuntimeError):
    """A catalog operation failed; the message names the database, table or partition."""


class EntityNotFound(CatalogError):
    """The database, table or partition does not exist."""


class AlreadyExists(CatalogError):
    """The table or partition to create exists already."""


class CrawlerRunning(CatalogError):
    """Another crawl holds the crawler: two crawls of one catalog never run at once."""


class Catalog(Protocol):
    """The semantics every catalog keeps (pinned for all of them by boston_lake_tests/lake/test_catalog_contract.py).

    Names are case-insensitive and stored lower-case. A missing database raises EntityNotFound wherever one
    is named, except in `create_database`. The batch calls take any number of entries (the Glue catalog
    splits them into Glue's per-call limits) and work entry by entry, as Glue's BatchCreatePartition,
    BatchUpdatePartition and BatchDeletePartition do: every entry that can be applied is, and the call then
    raises naming every entry that could not (AlreadyExists when creating, EntityNotFound when updating or
    deleting). An empty batch does nothing.
    """

    def uri(self) -> str:
        """Where the catalog lives, for logs and metadata (a file path, or glue://region/account)."""
        ...

    def create_database(self, name: str, description: str = "") -> None:
        """Create the database if it does not exist yet; an existing one is left as it is."""
        ...

    def list_databases(self) -> list[GlueDict]:
        """Glue `Database` dicts, every one of the catalog."""
        ...

    def get_table(self, database: str, name: str) -> GlueDict | None:
        """Glue's `Table` dict with its VersionId, or None when the table does not exist."""
        ...

    def list_tables(self, database: str) -> list[GlueDict]:
        """The current `Table` dict of every table of the database."""
        ...

    def create_table(self, database: str, table_input: GlueDict) -> None:
        """Create the table at VersionId "1"; AlreadyExists when it exists."""
        ...

    def update_table(self, database: str, table_input: GlueDict) -> None:
        """Replace the table's definition under the next VersionId; the previous one stays as a table
        version. EntityNotFound when the table does not exist."""
        ...

    def delete_table(self, database: str, name: str) -> None:
        """Delete the table with its versions and partitions; EntityNotFound when it does not exist."""
        ...

    def get_table_versions(self, database: str, name: str) -> list[GlueDict]:
        """[{"VersionId": "<n>", "Table": {...}}], newest first, the current definition included."""
        ...

    def get_partitions(self, database: str, table: str, years: Iterable[str] | None = None) -> list[GlueDict]:
        """Every Glue `Partition` dict of the table (all pages), optionally only those whose first partition
        value is in `years`; EntityNotFound when the table does not exist."""
        ...

    def batch_create_partitions(self, database: str, table: str, partition_inputs: list[GlueDict]) -> None:
        """Create the partitions; those that exist already are left as they are and named in AlreadyExists."""
        ...

    def batch_update_partitions(self, database: str, table: str, partition_inputs: list[GlueDict]) -> None:
        """Replace each partition named by its Values; missing ones are named in EntityNotFound."""
        ...

    def batch_delete_partitions(self, database: str, table: str, values: list[list[str]]) -> None:
        """Delete the partitions with these values; missing ones are named in EntityNotFound."""
        ...

    def crawl_lock(self, crawler: str) -> AbstractContextManager[None]:
        """Held for the whole of a crawl; raises CrawlerRunning at once when another crawl holds it."""
        ...
