"""The catalog interface: the Glue Data Catalog operations the lake needs, in Glue's own data shapes.

Tables, partitions and table versions are the dicts the Glue API takes and returns (TableInput,
StorageDescriptor, PartitionInput, ...), so the embedded SQLite catalog and the real Glue catalog are
interchangeable under the crawler and the query engines, and what one writes the other could read.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

GlueDict = dict[str, Any]

# The Glue API's own limits per call, kept by every catalog so that what works embedded works on Glue.
MAX_PARTITIONS_PER_CREATE = 100  # BatchCreatePartition
MAX_PARTITIONS_PER_UPDATE = 100  # BatchUpdatePartition
MAX_PARTITIONS_PER_DELETE = 25  # BatchDeletePartition
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


class CatalogError(RuntimeError):
    """A catalog operation failed; the message names the database, table or partition."""


class EntityNotFound(CatalogError):
    """The database, table or partition does not exist."""


class CrawlerRunning(CatalogError):
    """Another crawl holds the crawler: two crawls of one catalog never run at once."""


class Catalog(Protocol):
    def uri(self) -> str:
        """Where the catalog lives, for logs and metadata (a file path, or glue://region/account)."""
        ...

    def create_database(self, name: str, description: str = "") -> None:
        """Create the database if it does not exist yet."""
        ...

    def list_databases(self) -> list[GlueDict]: ...

    def get_table(self, database: str, name: str) -> GlueDict | None:
        """Glue's `Table` dict, or None when the table does not exist."""
        ...

    def list_tables(self, database: str) -> list[GlueDict]: ...

    def create_table(self, database: str, table_input: GlueDict) -> None: ...

    def update_table(self, database: str, table_input: GlueDict) -> None:
        """Replace the table's definition; the previous definition is archived as a table version."""
        ...

    def delete_table(self, database: str, name: str) -> None: ...

    def get_table_versions(self, database: str, name: str) -> list[GlueDict]:
        """[{"VersionId": "<n>", "Table": {...}}], newest first, the current definition included."""
        ...

    def get_partitions(self, database: str, table: str, years: Iterable[str] | None = None) -> list[GlueDict]:
        """Glue `Partition` dicts, optionally only those whose first partition value is in `years`."""
        ...

    def batch_create_partitions(self, database: str, table: str, partition_inputs: list[GlueDict]) -> None: ...

    def batch_update_partitions(self, database: str, table: str, partition_inputs: list[GlueDict]) -> None: ...

    def batch_delete_partitions(self, database: str, table: str, values: list[list[str]]) -> None: ...

    def crawl_lock(self, crawler: str) -> AbstractContextManager[None]:
        """Held for the whole of a crawl; raises CrawlerRunning at once when another crawl holds it."""
        ...
