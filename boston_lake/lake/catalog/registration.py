"""Crawl, then prove it: what a crawl changed in a catalog table, and that the years asked for are there.

The proof is read from the catalog itself (before and after), not from the crawler's own report, so it
holds whichever crawler ran: ours writing the embedded catalog or Glue's API, or AWS's managed crawler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from boston_lake.lake import layout
from boston_lake.lake.catalog import Catalog, CatalogError, EntityNotFound, GlueDict
from boston_lake.lake.catalog.crawler import Crawler
from boston_lake.lake.log import Log
from boston_lake.lake.stores import ObjectStore

# The metadata key of a table's recordCount (all its years), named so that it is not read as one year's row count.
TABLE_ROWS = "table_rows_all_years"


class PartitionsNotRegistered(CatalogError):
    """The crawl finished but left requested partitions out of the catalog."""


@dataclass(frozen=True)
class TableSnapshot:
    exists: bool
    version_id: str | None = None
    columns: tuple[tuple[str, str], ...] = ()
    partition_keys: tuple[tuple[str, str], ...] = ()
    record_count: int = 0
    partitions: dict[str, dict[str, str]] = field(default_factory=dict)  # year -> partition parameters

    @classmethod
    def take(cls, catalog: Catalog, database: str, table: str) -> TableSnapshot:
        try:
            found = catalog.get_table(database, table)
        except EntityNotFound:  # no database yet: the first crawl creates it
            found = None
        if found is None:
            return cls(exists=False)
        descriptor = found.get("StorageDescriptor", {})
        parameters = found.get("Parameters", {})
        return cls(
            exists=True,
            version_id=found.get("VersionId"),
            columns=tuple((c["Name"], c["Type"]) for c in descriptor.get("Columns", [])),
            partition_keys=tuple((k["Name"], k["Type"]) for k in found.get("PartitionKeys", [])),
            record_count=int(parameters.get("recordCount", 0) or 0),
            partitions={p["Values"][0]: dict(p.get("Parameters", {})) for p in catalog.get_partitions(database, table)},
        )


@dataclass(frozen=True)
class CatalogUpdate:
    database: str
    table: str
    before: TableSnapshot
    after: TableSnapshot
    crawl_summary: str
    conflicts: tuple[str, ...] = ()

    @property
    def columns_added(self) -> list[str]:
        old = {name for name, _ in self.before.columns}
        return [name for name, _ in self.after.columns if name not in old]

    @property
    def columns_removed(self) -> list[str]:
        new = {name for name, _ in self.after.columns}
        return [name for name, _ in self.before.columns if name not in new]

    @property
    def partitions_added(self) -> list[str]:
        return sorted(set(self.after.partitions) - set(self.before.partitions))

    @property
    def partitions_updated(self) -> list[str]:
        return sorted(
            year
            for year, parameters in self.after.partitions.items()
            if year in self.before.partitions and self.before.partitions[year] != parameters
        )

    @property
    def created(self) -> bool:
        return self.after.exists and not self.before.exists

    @property
    def schema_changed(self) -> bool:
        """A change to an existing table's columns; creating the table is not one."""
        return self.before.exists and self.before.columns != self.after.columns

    def metadata(self) -> dict[str, Any]:
        return {
            "table": f"{self.database}.{self.table}",
            "schema_version": self.after.version_id or "",
            "table_created": self.created,
            "schema_changed": self.schema_changed,
            "columns_added": self.columns_added,
            "columns_removed": self.columns_removed,
            "partitions_added": self.partitions_added,
            "partitions_updated": self.partitions_updated,
            # The catalog's recordCount: every year of the table, unlike a partition's dagster/row_count.
            TABLE_ROWS: self.after.record_count,
            "conflicts": list(self.conflicts),
        }


def register(
    crawl: Callable[[], tuple[str, Sequence[str]]],
    catalog: Catalog,
    database: str,
    table: str,
    years: Sequence[int],
) -> CatalogUpdate:
    """Run `crawl` (returning a summary and any conflicts) and fail, naming them, if a year is missing after it."""
    before = TableSnapshot.take(catalog, database, table)
    summary, conflicts = crawl()
    after = TableSnapshot.take(catalog, database, table)
    missing = [year for year in years if str(year) not in after.partitions]
    if missing:
        where = (
            "the table does not exist" if not after.exists else f"it has {sorted(after.partitions) or 'no partitions'}"
        )
        raise PartitionsNotRegistered(
            f"after the crawl, {database}.{table} lacks partitions year={', year='.join(map(str, missing))} ({where}); "
            f"is bronze materialized for them? crawl: {summary}"
        )
    return CatalogUpdate(database, table, before, after, summary, tuple(conflicts))


def partition_record_count(partition_parameters: GlueDict) -> int:
    return int(partition_parameters.get("recordCount", 0) or 0)


def direct_crawl(
    store: ObjectStore, catalog: Catalog, database: str, table: str, log: Log, prefix: str | None = None
) -> tuple[str, list[str]]:
    """Our crawler over one table's prefix (bronze's unless given), writing straight into `catalog` (embedded, or
    Glue's API)."""
    result = Crawler(store, catalog, database).crawl([(table, prefix or layout.bronze_table_prefix(table))], log)
    crawled = result.table(table)
    return crawled.summary(), [conflict.describe() for conflict in crawled.conflicts]
