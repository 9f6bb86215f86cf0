"""The file plans of the Iceberg tables for a reader, without pyiceberg when the lake's own index holds them.

Planning a query through pyiceberg means importing it, opening its SQL catalog, parsing the table's metadata and
decoding its Avro manifests: a hundred times the work of reading the files that come out of it. But a snapshot's data
files never change once it is committed, so each commit the lake makes (a year published, a rollback) records its
snapshot's files in a small index beside the catalog (`iceberg_files.sqlite`). A reader reads each table's current
metadata location from the catalog (one SQLite read, so a commit, a rollback or a removed year is seen at once), the
snapshot it wants from that metadata file (the current one, the one current at a time, or one by id), and the
snapshot's files from the index. A snapshot the index lacks (committed by an older version or another writer) and a
table whose metadata is not in this lake go through pyiceberg, which says why a table cannot be read.

No module here imports pyiceberg: the query path loads it only when the index cannot answer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from boston_lake.lake.errors import LakeError
from boston_lake.lake.stores import ObjectStore

if TYPE_CHECKING:
    from boston_lake.lake.catalog.iceberg import IcebergTables

SNAPSHOT_FILES_TABLE = "snapshot_files"
# A writer waits this long for another writer's index transaction (they are a few rows).
INDEX_TIMEOUT_SECONDS = 30.0


class IcebergError(LakeError, RuntimeError):
    """An Iceberg table, snapshot or commit could not be used; the message names the table and what is wrong."""


@dataclass(frozen=True)
class TimeTravel:
    """Which state of the Iceberg tables a reader reads: the current one, the one current at `as_of`, or the
    snapshot `snapshot_id` of the table that has it (the other tables current)."""

    as_of: datetime | None = None
    snapshot_id: int | None = None

    def __post_init__(self) -> None:
        if self.as_of is not None and self.snapshot_id is not None:
            raise IcebergError("read as of a time or at a snapshot, not both")
        if self.as_of is not None and self.as_of.tzinfo is None:
            raise IcebergError(f"as of {self.as_of.isoformat()}: give a time zone (e.g. 2026-08-20T12:00:00Z)")


class ReadPlan(NamedTuple):
    """A table as a reader reads it."""

    columns: list[tuple[str, str]]  # (name, Iceberg type)
    paths: list[str]  # of its data files
    # Whether the table has only ever had one schema: every data file then holds its columns, so a reader need not
    # unify the files' columns by name (which reads every file's footer before the query starts).
    one_schema: bool


# Per table its plan, and the tables that cannot be read, with why.
ReadPlans = tuple[dict[str, ReadPlan], dict[str, str]]


class PlanSource(Protocol):
    """What the query engine asks of the Iceberg tables: the plans of `names` (None: every table) as `travel`
    asks; an error when no table has the snapshot asked for."""

    def read_plan(self, travel: TimeTravel, names: Iterable[str] | None = None) -> ReadPlans: ...


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def no_such_snapshot(database: str, snapshot_id: int | None) -> IcebergError:
    return IcebergError(
        f"no Iceberg table of {database} has a snapshot {snapshot_id} (`boston-lake history TABLE` lists them)"
    )


class SnapshotFiles:
    """The index: the data files of each snapshot the lake committed, by (database, table, snapshot id)."""

    def __init__(self, path: Path):
        self.path = path

    def record(self, database: str, table: str, snapshot_id: int, paths: list[str]) -> None:
        with closing(self._connect()) as connection, connection:
            connection.execute(
                f"INSERT OR REPLACE INTO {SNAPSHOT_FILES_TABLE} VALUES (?, ?, ?, ?)",
                (database, table, snapshot_id, json.dumps(paths)),
            )

    def snapshot_ids(self, database: str, table: str) -> set[int]:
        """The snapshots of the table whose files the index holds."""
        if not self.path.is_file():
            return set()
        with closing(self._connect()) as connection:
            rows = connection.execute(
                f"SELECT snapshot_id FROM {SNAPSHOT_FILES_TABLE} WHERE database = ? AND table_name = ?",
                (database, table),
            ).fetchall()
        return {snapshot_id for (snapshot_id,) in rows}

    def forget(self, database: str, table: str, snapshot_ids: Iterable[int]) -> None:
        """Drop the rows of snapshots the table no longer has: nothing can read them any more."""
        rows = [(database, table, snapshot_id) for snapshot_id in snapshot_ids]
        if not rows:
            return
        with closing(self._connect()) as connection, connection:
            connection.executemany(
                f"DELETE FROM {SNAPSHOT_FILES_TABLE} WHERE database = ? AND table_name = ? AND snapshot_id = ?", rows
            )

    def _connect(self) -> sqlite3.Connection:
        """A writer's connection, the index created if it is not there yet."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=INDEX_TIMEOUT_SECONDS)
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {SNAPSHOT_FILES_TABLE} (database TEXT NOT NULL, table_name TEXT NOT NULL, "
            "snapshot_id INTEGER NOT NULL, files TEXT NOT NULL, PRIMARY KEY (database, table_name, snapshot_id))"
        )
        return connection

    def files(self, database: str, wanted: dict[str, int]) -> dict[str, list[str]]:
        """The files of each table's snapshot in `wanted` (table -> snapshot id) that the index holds."""
        if not wanted or not self.path.is_file():
            return {}
        try:
            connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                rows = connection.execute(
                    f"SELECT table_name, snapshot_id, files FROM {SNAPSHOT_FILES_TABLE} "
                    f"WHERE database = ? AND snapshot_id IN ({', '.join('?' * len(wanted))})",
                    (database, *wanted.values()),
                ).fetchall()
            finally:
                connection.close()
        except sqlite3.Error:  # an index not created yet, or unreadable: pyiceberg plans every table
            return {}
        return {name: json.loads(files) for name, snapshot_id, files in rows if wanted.get(name) == snapshot_id}


class IndexedPlans:
    """The read plans of the Iceberg tables in a SQL catalog of pyiceberg (`catalog_file`, catalog `catalog_name`),
    from the lake's snapshot index where it can, from pyiceberg (`tables`, opened on first need) where not."""

    def __init__(
        self,
        catalog_file: Path,
        catalog_name: str,
        store: ObjectStore,
        database: str,
        index: SnapshotFiles,
        tables: Callable[[], IcebergTables],
    ):
        self.catalog_file = catalog_file
        self.catalog_name = catalog_name
        self.store = store
        self.database = database
        self.index = index
        self._open_tables = tables
        self._tables: IcebergTables | None = None

    def read_plan(self, travel: TimeTravel, names: Iterable[str] | None = None) -> ReadPlans:
        locations = self._metadata_locations()
        if locations is None:
            return self.tables().read_plan(travel, names)
        if travel.snapshot_id is not None or names is None:  # which table has the snapshot: ask every one
            names = list(locations)
        plans: dict[str, ReadPlan] = {}
        wanted: dict[str, int] = {}
        found = travel.snapshot_id is None
        for name in sorted(set(names) & locations.keys()):
            metadata = self._metadata(locations[name])
            if metadata is None:
                continue
            snapshot_id = _snapshot_id(metadata, travel)
            found = found or snapshot_id == travel.snapshot_id
            columns = _columns(metadata, snapshot_id)
            if columns is None:
                continue
            plans[name] = ReadPlan(columns, [], len(metadata.get("schemas", [])) == 1)
            if snapshot_id is not None:
                wanted[name] = snapshot_id
        indexed = self.index.files(self.database, wanted)
        for name in wanted:
            if name in indexed:
                plans[name] = plans[name]._replace(paths=indexed[name])
            else:
                del plans[name]
        unplanned = sorted(set(names) & locations.keys() - plans.keys())
        unreadable: dict[str, str] = {}
        if unplanned:
            more, unreadable, found_there = self.tables().plan_tables(travel, unplanned)
            plans.update(more)
            found = found or found_there
        if not found:
            raise no_such_snapshot(self.database, travel.snapshot_id)
        return plans, unreadable

    def tables(self) -> IcebergTables:
        if self._tables is None:
            self._tables = self._open_tables()
        return self._tables

    def _metadata_locations(self) -> dict[str, str] | None:
        """Each table's current metadata location, as the catalog has it now; None when it cannot be read here."""
        try:
            connection = sqlite3.connect(f"file:{self.catalog_file}?mode=ro", uri=True)
            try:
                rows = connection.execute(
                    "SELECT table_name, metadata_location FROM iceberg_tables WHERE catalog_name = ? "
                    "AND table_namespace = ? AND coalesce(iceberg_type, 'TABLE') = 'TABLE'",
                    (self.catalog_name, self.database),
                ).fetchall()
            finally:
                connection.close()
        except sqlite3.Error:
            return None
        return {name: location for name, location in rows if location}

    def _metadata(self, location: str) -> dict[str, Any] | None:
        """The table metadata at `location`; None when it is not this lake's or cannot be read (pyiceberg then
        plans the table, and says what is wrong)."""
        root = self.store.uri("").rstrip("/") + "/"
        if not location.startswith(root):
            return None
        try:
            return dict(json.loads(self.store.get_bytes(location[len(root) :])))
        except (OSError, LakeError, ValueError):
            return None


def _snapshot_id(metadata: dict[str, Any], travel: TimeTravel) -> int | None:
    """The snapshot `travel` reads of the table, as pyiceberg picks it; None: the table was empty then."""
    known = {snapshot["snapshot-id"] for snapshot in metadata.get("snapshots", [])}
    if travel.as_of is not None:
        moment = millis(travel.as_of)
        for entry in reversed(metadata.get("snapshot-log", [])):
            if entry["timestamp-ms"] <= moment:
                return entry["snapshot-id"] if entry["snapshot-id"] in known else None
        return None
    if travel.snapshot_id is not None and travel.snapshot_id in known:
        return travel.snapshot_id
    current = metadata.get("current-snapshot-id")
    return current if current in known else None


def _columns(metadata: dict[str, Any], snapshot_id: int | None) -> list[tuple[str, str]] | None:
    """The columns (name, Iceberg type) of the schema the snapshot was written with (else the table's current one);
    None for a type the metadata spells as a structure (nested types: pyiceberg reads those)."""
    schemas = {schema["schema-id"]: schema for schema in metadata.get("schemas", [])}
    schema_id = metadata.get("current-schema-id")
    for snapshot in metadata.get("snapshots", []):
        if snapshot["snapshot-id"] == snapshot_id and snapshot.get("schema-id") in schemas:
            schema_id = snapshot["schema-id"]
    if schema_id not in schemas:
        return None
    fields = schemas[schema_id]["fields"]
    if not all(isinstance(field["type"], str) for field in fields):
        return None
    return [(field["name"], field["type"]) for field in fields]
