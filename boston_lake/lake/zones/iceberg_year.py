"""A year of an Iceberg table (silver, gold) through the partition protocol: publishing is one Iceberg commit.

The staged version (a file in the workspace, or an object the Glue job wrote to staging) is audited first; only a
version that passes is copied to a new data file of the table and committed, in one snapshot that replaces the
year's files. The published version is the year's current data file, and "already built?" asks the snapshot that
published it for its fingerprint. A lake from before Iceberg kept each year as `year=YYYY/part-00000.parquet`
under the same prefix: that object is the shrink guard's baseline until the year is first committed, and then goes,
so the lake never holds two truths of a year.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, TypeVar

import pyarrow as pa

from boston_lake.lake import layout
from boston_lake.lake.catalog.iceberg import FINGERPRINT_PROPERTY, IcebergTables, summary_of
from boston_lake.lake.log import Log
from boston_lake.lake.zones.publish import PartitionBuild, Staged

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

R = TypeVar("R")


class IcebergYearBuild(PartitionBuild[R]):
    """The protocol's pieces every Iceberg table shares; a zone adds its fingerprint, stage and description."""

    def __init__(
        self,
        tables: IcebergTables,
        zone: str,
        table: str,
        year: int,
        run_id: str | None,
        iceberg: Table | None | Literal["load"] = "load",
    ):
        """`iceberg`: the table as the caller loaded it (None: it does not exist yet), for a run that builds many
        years on one table; "load": load it here."""
        # `data_key` is where the lake before Iceberg kept the year: swept once the year is committed.
        super().__init__(tables.store, zone, table, year, layout.data_key(zone, table, year))
        self.tables = tables
        self.run_id = run_id
        self.iceberg: Table | None = tables.load(table) if iceberg == "load" else iceberg

    def published_file(self) -> str | None:
        """The key of the data file readers read for the year now (one per year: each commit writes one)."""
        if self.iceberg is None:
            return None
        files = self.tables.files(self.iceberg, year=self.year)
        return self.tables.key_of(files[0]) if len(files) == 1 else None

    def published_key(self) -> str | None:
        return self.published_file() or super().published_key()

    def publication(self, fingerprint: str) -> tuple[str, Snapshot] | None:
        """(data file, the snapshot that published it) when the year's current file was built from `fingerprint`;
        None: build it."""
        key = self.published_file()
        if key is None or self.iceberg is None:
            return None
        snapshot = self.tables.publication(self.iceberg, key)
        if snapshot is None or summary_of(snapshot).get(FINGERPRINT_PROPERTY) != fingerprint:
            return None
        return key, snapshot

    def commit(
        self,
        staged: Staged,
        schema: pa.Schema,
        rows: int,
        fingerprint: str,
        description: str,
        docs: Mapping[str, str],
        **extra: str,
    ) -> tuple[str, Snapshot]:
        """Copy the staged version to a new data file of the table and commit it as the whole year (a new table's
        fields documented by `docs`, the data dictionary's entries); a commit that fails takes its data file with it
        (housekeeping removes what a killed run left)."""
        key = self.tables.data_key(self.zone, self.table, self.year)
        if staged.path is not None:
            self.store.publish(staged.path, key)
        else:
            assert staged.key is not None, "staged first"
            self.store.copy(staged.key, key)
        try:
            # The table as loaded when the build began: a commit another writer made since fails ours, which is then
            # redone on the table as it is (IcebergTables._commit); loading it again here would read its metadata twice.
            if self.iceberg is None:
                self.iceberg = self.tables.open(self.zone, self.table, schema, description, docs)
            snapshot = self.tables.replace_year(self.iceberg, self.year, key, rows, fingerprint, self.run_id, **extra)
        except BaseException:
            self.store.delete(key)
            raise
        return key, snapshot

    def sweep_strays(self, log: Log) -> None:
        """The year as the lake before Iceberg kept it (its object and build record) goes: Iceberg holds it now."""
        for legacy in list(self.store.list(self.partition_prefix)):
            log.info(f"{self.label}: removing {legacy.key}, the year as kept before Iceberg")
            self.store.delete(legacy.key)
