"""Housekeeping of the silver and gold Iceberg tables: snapshot expiry, and the files nothing reads any more.

Snapshots older than the retention (BOSTON_LAKE_SNAPSHOT_RETENTION_DAYS) are expired, except the current one,
the last one of each calendar month (so `query --as-of` still answers for any month, at its end), and the one
that published a data file the table reads now (its summary is what "already built?" asks). Then every data file
of a year that no remaining snapshot reads goes (a commit that failed after its file was copied, or a file only
expired snapshots read), inside the year's claim, so a run publishing that year is never raced; and the manifest
files only the expired snapshots read go with them, and so do the rows of the snapshot index (the files of each
snapshot, for readers) of every snapshot the table no longer has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from boston_lake.lake import layout
from boston_lake.lake.catalog.iceberg import DATA_FOLDER, IcebergTables, latest_per_month, millis
from boston_lake.lake.clock import utc_now
from boston_lake.lake.log import Log
from boston_lake.lake.stores import WorkBusy

if TYPE_CHECKING:
    from pyiceberg.table import Table


@dataclass
class Upkeep:
    """What housekeeping did to one table."""

    table: str
    expired: list[int] = field(default_factory=list)  # snapshot ids
    kept: int = 0  # snapshots that remain
    removed: list[str] = field(default_factory=list)  # keys of files no snapshot reads
    busy_years: list[int] = field(default_factory=list)  # years a running build held: swept next time
    index_rows_dropped: int | None = None  # of snapshots the table no longer has; None: no snapshot index here

    def line(self) -> str:
        busy = f"; {', '.join(map(str, self.busy_years))} being built, swept next time" if self.busy_years else ""
        index = "" if self.index_rows_dropped is None else f", {self.index_rows_dropped} snapshot index rows dropped"
        return (
            f"{self.table}: {len(self.expired)} snapshots expired, {self.kept} kept, "
            f"{len(self.removed)} unread files removed{index}{busy}"
        )


def keep_tables(tables: IcebergTables, retention_days: int, log: Log, now: datetime | None = None) -> list[Upkeep]:
    """Expire the snapshots of every Iceberg table beyond `retention_days`, then remove the files no snapshot
    reads."""
    upkeeps = []
    for name in tables.names():
        upkeep = _keep(tables, name, (now or utc_now()) - timedelta(days=retention_days))
        log.info(upkeep.line())
        upkeeps.append(upkeep)
    return upkeeps


def _keep(tables: IcebergTables, name: str, horizon: datetime) -> Upkeep:
    table = tables.table(name)
    upkeep = Upkeep(name)
    expiring = _expiring(tables, table, horizon)
    expired_manifests: set[str] = set()
    if expiring:
        for snapshot in (s for s in table.snapshots() if s.snapshot_id in expiring):
            expired_manifests.add(snapshot.manifest_list)
            expired_manifests |= {manifest.manifest_path for manifest in snapshot.manifests(table.io)}
        table.maintenance.expire_snapshots().by_ids(sorted(expiring)).commit()
        table = table.refresh()
        upkeep.expired = sorted(expiring)
    upkeep.kept = len(table.snapshots())
    read_files, read_manifests = _read_by_snapshots(tables, table)
    for manifest in sorted(expired_manifests - read_manifests):
        tables.store.delete(tables.key_of_path(manifest))
        upkeep.removed.append(tables.key_of_path(manifest))
    _sweep_data(tables, table, name, read_files, upkeep)
    upkeep.index_rows_dropped = tables.forget_expired(name)
    return upkeep


def _expiring(tables: IcebergTables, table: Table, horizon: datetime) -> set[int]:
    snapshots = table.snapshots()
    current = table.current_snapshot()
    kept = latest_per_month(snapshots) | ({current.snapshot_id} if current else set())
    for data_file in tables.files(table):
        publisher = tables.publication(table, tables.key_of(data_file))
        if publisher is not None:
            kept.add(publisher.snapshot_id)
    return {s.snapshot_id for s in snapshots if s.timestamp_ms < millis(horizon) and s.snapshot_id not in kept}


def _read_by_snapshots(tables: IcebergTables, table: Table) -> tuple[set[str], set[str]]:
    """(data file paths, manifest and manifest-list paths) that the remaining snapshots read."""
    files: set[str] = set()
    manifests: set[str] = set()
    for snapshot in table.snapshots():
        files |= {data_file.file_path for data_file in tables.files(table, snapshot)}
        manifests.add(snapshot.manifest_list)
        manifests |= {manifest.manifest_path for manifest in snapshot.manifests(table.io)}
    return files, manifests


def _sweep_data(tables: IcebergTables, table: Table, name: str, read: set[str], upkeep: Upkeep) -> None:
    """Remove the data files no snapshot reads, a year at a time inside the year's claim (and judged again there:
    a run may have committed its file since)."""
    prefix = tables.key_of_path(table.location()).rstrip("/") + f"/{DATA_FOLDER}/"
    zone = prefix.split("/", 1)[0]
    years = sorted(
        {
            year
            for stored in tables.store.list(prefix)
            if (year := layout.year_of_key(stored.key)) is not None and tables.store.uri(stored.key) not in read
        }
    )
    for year in years:
        try:
            with tables.store.workspace(f"{zone}.{name}.{year}"):
                now_read, _ = _read_by_snapshots(tables, tables.table(name))
                for stored in list(tables.store.list(f"{prefix}year={year}/")):
                    if tables.store.uri(stored.key) not in now_read:
                        tables.store.delete(stored.key)
                        upkeep.removed.append(stored.key)
        except WorkBusy:
            upkeep.busy_years.append(year)
