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
from collections.abc import Iterable
from dataclasses import dataclass, field

from boston_lake.lake.catalog import Catalog, GlueDict
from boston_lake.lake.catalog.glue_definitions import (
    DEPRECATED_BY_CRAWLER,
    columns_of,
    deprecated,
    partition_input,
    partition_input_of,
    table_input,
    table_input_of,
)
from boston_lake.lake.catalog.scan import CrawlError, ScannedTable, scan_table
from boston_lake.lake.catalog.schema_merge import ColumnConflict, Values, column_changes, merge_columns, partition_label
from boston_lake.lake.log import Log
from boston_lake.lake.settings import DEFAULT_CRAWLER_NAME
from boston_lake.lake.stores import ObjectStore

UPDATE_IN_DATABASE = "UPDATE_IN_DATABASE"
LOG = "LOG"
DEPRECATE_IN_DATABASE = "DEPRECATE_IN_DATABASE"
DELETE_FROM_DATABASE = "DELETE_FROM_DATABASE"

_TABLE_NAME = re.compile(r"^[a-z0-9_]+$")


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
    damaged: dict[Values, str] = field(default_factory=dict)  # partitions left as they were, and why
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
                parts.append(f"partitions {label} {', '.join(partition_label(values) for values in partitions)}")
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
        lines += [
            f"  damaged, left as it was: {partition_label(values)}: {why}" for values, why in self.damaged.items()
        ]
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
            scanned = [scan_table(self.store, table, prefix) for table, prefix in targets]
            tables = [self._apply(table, log) for table in scanned]
        result = CrawlResult(self.name, self.database, tables, time.perf_counter() - started)
        log.info(result.summary())
        return result

    # Writing the catalog

    def _apply(self, scanned: ScannedTable, log: Log) -> TableCrawl:
        crawl = TableCrawl(
            scanned.name,
            scanned.location,
            record_count=scanned.rows,
            skipped_objects=scanned.foreign,
            damaged=scanned.damaged,
        )
        for key in scanned.foreign:
            log.warning(f"crawler {self.name}: table {scanned.name}: skipped {self.store.uri(key)}: not a Parquet file")
        for values, why in scanned.damaged.items():
            log.warning(
                f"crawler {self.name}: table {scanned.name}: partition {partition_label(values)} left as it was: {why}"
            )
        existing = self.catalog.get_table(self.database, scanned.name)
        existing_partitions = (
            {tuple(p["Values"]): p for p in self.catalog.get_partitions(self.database, scanned.name)}
            if existing
            else {}
        )
        if not scanned.partitions and scanned.damaged:
            crawl.action = UNCHANGED  # every partition is damaged: nothing to describe, nothing to remove
        elif not scanned.partitions:
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
        scanned: ScannedTable,
        existing: GlueDict | None,
        existing_partitions: dict[Values, GlueDict],
        crawl: TableCrawl,
    ) -> None:
        partition_inputs = {}
        for partition in scanned.partitions:
            old = existing_partitions.get(partition.values)
            columns, _ = merge_columns(
                [(partition.values, data_file.columns) for data_file in partition.files],
                columns_of(old["StorageDescriptor"]) if old else [],
            )
            partition_inputs[partition.values] = partition_input(self.name, partition, columns, old)
        # Damaged partitions keep their registration, so the table keeps their columns and statistics too.
        held = [existing_partitions[values] for values in scanned.damaged if values in existing_partitions]
        # Merged from the files, not the partitions, so that a conflict inside one partition is reported too.
        old_columns = columns_of(existing["StorageDescriptor"]) if existing else []
        columns, crawl.conflicts = merge_columns(
            [(partition.values, data_file.columns) for partition in scanned.partitions for data_file in partition.files]
            + [(tuple(partition["Values"]), columns_of(partition["StorageDescriptor"])) for partition in held],
            old_columns,
        )
        definition = table_input(self.name, scanned, columns, existing, held)
        crawl.record_count = int(definition["Parameters"]["recordCount"])
        if existing is None:
            self.catalog.create_table(self.database, definition)
            crawl.action = CREATED
            crawl.columns_added = [name for name, _ in columns]
        elif table_input_of(existing) != definition:
            changes = column_changes(old_columns, columns)
            if self.policy.update_behavior == UPDATE_IN_DATABASE:
                self.catalog.update_table(self.database, definition)
                crawl.action = UPDATED
                crawl.columns_added, crawl.columns_removed, crawl.columns_retyped = changes
            else:
                crawl.logged_changes.append(_describe_table_change(existing, definition, changes))
                if existing.get("PartitionKeys", []) != definition["PartitionKeys"]:
                    crawl.logged_changes.append(
                        f"partitions left as they were: the data is partitioned by {scanned.partition_keys}, "
                        f"the table by {[key['Name'] for key in existing.get('PartitionKeys', [])]}"
                    )
                    return
        # A damaged partition keeps its registration: it is neither rewritten nor removed until it is rebuilt.
        kept = {values: partition for values, partition in existing_partitions.items() if values not in scanned.damaged}
        self._sync_partitions(scanned.name, partition_inputs if scanned.partition_keys else {}, kept, crawl)

    def _sync_partitions(
        self,
        table: str,
        wanted: dict[Values, GlueDict],
        existing: dict[Values, GlueDict],
        crawl: TableCrawl,
    ) -> None:
        added = [values for values in wanted if values not in existing]
        changed = [
            values for values in wanted if values in existing and partition_input_of(existing[values]) != wanted[values]
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
                f"UpdateBehavior LOG: partitions {', '.join(map(partition_label, changed))} changed "
                "(files, statistics or columns) and were left as they were"
            )
        self._remove_partitions(table, [values for values in existing if values not in wanted], crawl)

    def _remove_partitions(self, table: str, vanished: list[Values], crawl: TableCrawl) -> None:
        if not vanished:
            return
        if self.policy.delete_behavior == LOG:
            crawl.logged_changes.append(
                f"DeleteBehavior LOG: partitions {', '.join(map(partition_label, vanished))} hold no data any more "
                "and were kept"
            )
            return
        self.catalog.batch_delete_partitions(self.database, table, [list(values) for values in vanished])
        crawl.partitions_removed = vanished

    def _gone(
        self,
        scanned: ScannedTable,
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
                self.catalog.update_table(self.database, deprecated(table_input_of(existing)))
                crawl.action = DEPRECATED
            self._remove_partitions(scanned.name, sorted(existing_partitions), crawl)


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
