"""Silver and gold as Apache Iceberg tables, through pyiceberg: one commit per published year, history, rollback.

The target hands in pyiceberg's catalog (SQL on SQLite inside the lake locally, the Glue Data Catalog on AWS) and
the lake's store; a table lives at its zone's prefix (`silver/boston311/service_requests/`: `data/` and
`metadata/` below it), format v2, partitioned by identity `year`. A year is published by one OVERWRITE snapshot
that removes the year's data files and adds the new one, so a reader sees the old year or the new one. Each such
snapshot's summary says which year it replaced, with how many rows, from which fingerprint, by which run: that is
what `history` shows, what "already built?" reads, and what housekeeping keeps.
"""

from __future__ import annotations

import functools
import getpass
import sqlite3
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from boston_lake.lake import layout
from boston_lake.lake.catalog import Catalog, EntityNotFound
from boston_lake.lake.catalog.iceberg_plans import (
    IcebergError,
    ReadPlan,
    ReadPlans,
    SnapshotFiles,
    TimeTravel,
    millis,
    no_such_snapshot,
)
from boston_lake.lake.stores import ObjectStore

# pyiceberg (with SQLAlchemy) costs every process that loads it about a second: the code location loads this module,
# and its ingest and crawl runs never touch an Iceberg table, so pyiceberg is imported where a table is used.
if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog as IcebergCatalog
    from pyiceberg.manifest import DataFile
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.snapshots import Snapshot

YEAR = "year"
PREFIX = "boston-lake."
YEAR_PROPERTY = PREFIX + "year"
ROWS_PROPERTY = PREFIX + "rows"
FINGERPRINT_PROPERTY = PREFIX + "fingerprint"
DATA_FILE_PROPERTY = PREFIX + "data-file"
RUN_PROPERTY = PREFIX + "dagster-run-id"
ROLLBACK_TO_PROPERTY = PREFIX + "rollback-to"
BY_PROPERTY = PREFIX + "by"
REASON_PROPERTY = PREFIX + "reason"
DATA_FOLDER = "data"
# A commit that lost a race with another year's commit is redone on the table as it now is.
COMMIT_ATTEMPTS = 5
SNAPSHOTS_REMEMBERED = 4  # per IcebergTables: the current snapshot of each table, and the one a commit made


@dataclass(frozen=True)
class SnapshotEntry:
    """One snapshot of a table as `boston-lake history` shows it."""

    snapshot_id: int
    committed_at: datetime
    operation: str
    year: str  # the year it replaced; "all" for a rollback
    rows: str
    run_id: str
    note: str  # a rollback's target, who and why

    def row(self) -> dict[str, object]:
        return {
            "snapshot": self.snapshot_id,
            "committed": self.committed_at.isoformat(timespec="milliseconds"),  # pasteable into --as-of
            "operation": self.operation,
            "year": self.year,
            "rows": self.rows,
            "dagster run": self.run_id,
            "note": self.note,
        }


@dataclass(frozen=True)
class Change:
    """The data files one commit took out of the table and put in."""

    removed: list[DataFile]
    added: list[DataFile]


def _utc(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


class IcebergTables:
    """The Iceberg tables of one database, kept in `catalog`, with data and metadata in `store`."""

    def __init__(
        self,
        catalog: IcebergCatalog,
        store: ObjectStore,
        database: str,
        retire: Callable[[str], None] = lambda name: None,
        read_only: bool = False,
        index: SnapshotFiles | None = None,
    ):
        self.catalog = catalog
        self.store = store
        self.database = database
        self.retire = retire  # removes a table of the same name the lake before Iceberg registered
        self.read_only = read_only
        self.index = index  # where each commit records its snapshot's files, for readers (iceberg_plans.py)
        # The files of the snapshots last read: a snapshot's files never change, and reading them decodes every
        # manifest of the snapshot (a silver year asked for them five times, a fifth of its run).
        self._snapshot_files: dict[tuple[str, int], list[DataFile]] = {}

    def __repr__(self) -> str:
        return f"IcebergTables({self.catalog.name!r}, {self.store.uri()!r}, {self.database!r})"

    # -- tables ---------------------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        if (self.database,) not in self.catalog.list_namespaces():
            return []
        return sorted(identifier[-1] for identifier in self.catalog.list_tables(self.database))

    def load(self, name: str) -> Table | None:
        """The table, or None when it does not exist yet. Iceberg's metadata names absolute paths, so a lake copied
        or moved to a new home still names the old one: a writer forgets such a table (its next runs rebuild it from
        bronze into the new home), a reader is told so."""
        from pyiceberg.exceptions import NoSuchTableError

        try:
            table = self.catalog.load_table((self.database, name))
            moved = not table.metadata_location.startswith(self.store.uri("").rstrip("/") + "/")
            where = table.metadata_location
        except NoSuchTableError:
            return None
        except OSError as error:  # the old home is gone: its metadata cannot be read
            moved, where = True, str(error)
        if not moved:
            return table
        if self.read_only:
            raise IcebergError(
                f"{self.database}.{name}: its Iceberg metadata is not in this lake ({where}): the lake was copied or "
                "moved; the next silver and gold runs rebuild the table here from bronze"
            )
        self.catalog.drop_table((self.database, name))
        return None

    def table(self, name: str) -> Table:
        """The table `name`; an error naming the tables there are when it does not exist."""
        table = self.load(name)
        if table is None:
            known = ", ".join(f"{self.database}.{known}" for known in self.names()) or "none"
            raise IcebergError(f"no Iceberg table {self.database}.{name}; the Iceberg tables are: {known}")
        return table

    def location(self, zone: str, name: str) -> str:
        return self.store.uri(layout.table_prefix(zone, name)).rstrip("/")

    def open(
        self, zone: str, name: str, schema: pa.Schema, description: str = "", docs: Mapping[str, str] | None = None
    ) -> Table:
        """The table, created (format v2, identity-partitioned by `year`, each field with its `docs` entry) the
        first time a year is published."""
        from pyiceberg.exceptions import NamespaceAlreadyExistsError
        from pyiceberg.partitioning import PartitionField, PartitionSpec
        from pyiceberg.transforms import IdentityTransform

        existing = self.load(name)
        if existing is not None:
            return existing
        self.retire(name)
        try:
            self.catalog.create_namespace(self.database)
        except NamespaceAlreadyExistsError:
            pass
        iceberg_schema = _iceberg_schema(schema, docs or {})
        year = iceberg_schema.find_field(YEAR)
        spec = PartitionSpec(PartitionField(year.field_id, 1000, IdentityTransform(), YEAR))
        properties = {
            "format-version": "2",
            # Writers (DuckDB, Spark) write no Iceberg field ids: readers map the files' columns by name.
            "schema.name-mapping.default": iceberg_schema.name_mapping.model_dump_json(),
            # Each commit writes a metadata.json; Iceberg prunes those beyond its last 100 itself.
            "write.metadata.delete-after-commit.enabled": "true",
            **({"comment": description} if description else {}),
        }
        return self.catalog.create_table(
            (self.database, name),
            schema=iceberg_schema,
            location=self.location(zone, name),
            partition_spec=spec,
            properties=properties,
        )

    def data_key(self, zone: str, name: str, year: int) -> str:
        """A new, never reused key for a data file of `year` (Iceberg files are immutable once committed)."""
        return f"{layout.table_prefix(zone, name)}{DATA_FOLDER}/{YEAR}={year}/{uuid.uuid4().hex}.parquet"

    def key_of(self, data_file: DataFile) -> str:
        return self.key_of_path(data_file.file_path)

    def key_of_path(self, path: str) -> str:
        """The store key of a path the table's metadata names."""
        root = self.store.uri("").rstrip("/") + "/"
        if not path.startswith(root):
            raise IcebergError(f"{path} lies outside the lake {root}")
        return path[len(root) :]

    # -- reading --------------------------------------------------------------------------------------------------

    def files(self, table: Table, snapshot: Snapshot | None = None, year: int | None = None) -> list[DataFile]:
        """The data files a reader reads (of one `year`, or all), in the current state or as of `snapshot`: every
        live entry of the snapshot's manifests (a scan would prune a year of no rows, which is still the year)."""
        snapshot = snapshot or table.current_snapshot()
        if snapshot is None:
            return []
        key = (_name(table), snapshot.snapshot_id)
        if key not in self._snapshot_files:
            self._remember(
                key,
                [
                    entry.data_file
                    for manifest in snapshot.manifests(table.io)
                    for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
                ],
            )
        return [data_file for data_file in self._snapshot_files[key] if year is None or data_file.partition[0] == year]

    def _remember(self, key: tuple[str, int], files: list[DataFile]) -> None:
        if len(self._snapshot_files) >= SNAPSHOTS_REMEMBERED:
            del self._snapshot_files[next(iter(self._snapshot_files))]
        self._snapshot_files[key] = files

    def read_plan(self, travel: TimeTravel, names: Iterable[str] | None = None) -> ReadPlans:
        """Per table (of `names`, or every one): its columns (name, Iceberg type) and the data files a reader reads,
        in the state `travel` asks for; and the tables that cannot be read, with why. An error when no table has
        the snapshot asked for."""
        known = self.names()
        plan, unreadable, found = self.plan_tables(travel, known if names is None else sorted(set(names) & set(known)))
        if not found:
            raise no_such_snapshot(self.database, travel.snapshot_id)
        return plan, unreadable

    def plan_tables(self, travel: TimeTravel, names: Iterable[str]) -> tuple[dict[str, ReadPlan], dict[str, str], bool]:
        """`read_plan` of `names`, and whether one of them has the snapshot `travel` asks for (True if it asks for
        none)."""
        plan: dict[str, ReadPlan] = {}
        unreadable: dict[str, str] = {}
        found = travel.snapshot_id is None
        for name in names:
            try:
                table = self.table(name)
            except IcebergError as error:
                unreadable[name] = str(error)
                continue
            snapshot = table.current_snapshot()
            if travel.as_of is not None:
                snapshot = self.snapshot_as_of(table, travel.as_of)
            elif travel.snapshot_id is not None and table.snapshot_by_id(travel.snapshot_id) is not None:
                snapshot, found = table.snapshot_by_id(travel.snapshot_id), True
            schema = (
                table.schemas().get(snapshot.schema_id, table.schema())
                if snapshot and snapshot.schema_id is not None
                else table.schema()
            )
            columns = [(field.name, str(field.field_type)) for field in schema.fields]
            files = self.files(table, snapshot) if snapshot is not None else []
            plan[name] = ReadPlan(columns, [data_file.file_path for data_file in files], len(table.schemas()) == 1)
        return plan, unreadable, found

    def keys_by_year(self, name: str) -> dict[int, list[str]]:
        """The keys of the data files readers read now, per year; empty when the table does not exist yet."""
        table = self.load(name)
        found: dict[int, list[str]] = {}
        for data_file in self.files(table) if table is not None else []:
            found.setdefault(int(data_file.partition[0]), []).append(self.key_of(data_file))
        return found

    def snapshot(self, table: Table, snapshot_id: int) -> Snapshot:
        found = table.snapshot_by_id(snapshot_id)
        if found is None:
            known = ", ".join(str(s.snapshot_id) for s in table.snapshots()[-5:]) or "none"
            raise IcebergError(f"{_name(table)} has no snapshot {snapshot_id} (its latest: {known})")
        return found

    def snapshot_as_of(self, table: Table, moment: datetime) -> Snapshot | None:
        """The snapshot that was current at `moment`; None when the table did not exist yet (then it was empty)."""
        return table.snapshot_as_of_timestamp(millis(moment))

    def publication(self, table: Table, data_file: str) -> Snapshot | None:
        """The snapshot that published `data_file`: its summary says the year, fingerprint, rows and run."""
        return next(
            (s for s in reversed(table.snapshots()) if summary_of(s).get(DATA_FILE_PROPERTY) == data_file), None
        )

    def history(self, table: Table) -> list[SnapshotEntry]:
        entries = []
        for snapshot in table.snapshots():
            summary = summary_of(snapshot)
            operation = snapshot.summary.operation.value if snapshot.summary else "?"
            rollback = summary.get(ROLLBACK_TO_PROPERTY)
            note = (
                f"rollback to {rollback} by {summary.get(BY_PROPERTY, '?')}: {summary.get(REASON_PROPERTY, '')}"
                if rollback
                else ""
            )
            entries.append(
                SnapshotEntry(
                    snapshot.snapshot_id,
                    _utc(snapshot.timestamp_ms),
                    "rollback" if rollback else operation,
                    summary.get(YEAR_PROPERTY, "all" if rollback else ""),
                    summary.get(ROWS_PROPERTY, summary.get("total-records", "")),
                    summary.get(RUN_PROPERTY, ""),
                    note,
                )
            )
        return entries

    # -- writing --------------------------------------------------------------------------------------------------

    def replace_year(
        self, table: Table, year: int, data_key: str, rows: int, fingerprint: str, run_id: str | None, **extra: str
    ) -> Snapshot:
        """One commit that makes the object at `data_key` the whole of `year`: the year's old files leave the table
        in the same snapshot; its summary records the year, rows, fingerprint, run and `extra`."""
        path = self.store.uri(data_key)
        properties = {
            YEAR_PROPERTY: str(year),
            ROWS_PROPERTY: str(rows),
            FINGERPRINT_PROPERTY: fingerprint,
            DATA_FILE_PROPERTY: data_key,
            RUN_PROPERTY: run_id or "",
            **extra,
        }

        from pyiceberg.io.pyarrow import parquet_file_to_data_file

        def overwrite(current: Table) -> Change:
            old_files = self.files(current, year=year)
            with _transaction(current) as transaction:
                arrow_schema = pa.schema(
                    [field for field in _file_schema(current, path) if field.name not in _field_names(current)]
                )
                if len(arrow_schema):  # a transform that adds a column: the table's schema grows with it
                    with transaction.update_schema() as update:
                        update.union_by_name(arrow_schema)
                new_file = parquet_file_to_data_file(current.io, transaction.table_metadata, path)
                # Set, not inferred from the column's statistics: a year of no rows has none, and is still the year.
                new_file.partition[0] = year
                # As a manifest read back gives it: the commit remembers the file as its snapshot's.
                new_file.spec_id = transaction.table_metadata.default_spec_id
                with transaction.update_snapshot(snapshot_properties=properties).overwrite() as snapshot:
                    for old in old_files:
                        snapshot.delete_data_file(old)
                    snapshot.append_data_file(new_file)
            return Change(old_files, [new_file])

        return self._commit(table, overwrite)

    def rollback(self, table: Table, snapshot_id: int, reason: str, by: str | None = None) -> Snapshot:
        """A new snapshot whose data files are those of `snapshot_id`: the earlier state restored, recorded with who
        and why; the snapshots in between stay in the history."""
        target = self.snapshot(table, snapshot_id)
        if not reason.strip():
            raise IcebergError(f"rollback of {_name(table)} to {snapshot_id}: say why (--reason)")
        properties = {
            ROLLBACK_TO_PROPERTY: str(snapshot_id),
            BY_PROPERTY: by or getpass.getuser(),
            REASON_PROPERTY: reason.strip(),
        }
        wanted = self.files(table, target)

        def restore(current: Table) -> Change:
            now = self.files(current)
            keep = {data_file.file_path for data_file in wanted}
            present = {data_file.file_path for data_file in now}
            change = Change(
                [old for old in now if old.file_path not in keep],
                [restored for restored in wanted if restored.file_path not in present],
            )
            with _transaction(current) as transaction:
                with transaction.update_snapshot(snapshot_properties=properties).overwrite() as snapshot:
                    for old in change.removed:
                        snapshot.delete_data_file(old)
                    for restored in change.added:
                        snapshot.append_data_file(restored)
            return change

        return self._commit(table, restore)

    def _commit(self, table: Table, change: Callable[[Table], Change]) -> Snapshot:
        """Make `change` on the table as it is (again on the table as it then is, when another writer committed
        first); returns the snapshot it committed."""
        from pyiceberg.exceptions import CommitFailedException, ValidationException

        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            current = table if attempt == 1 else self.table(_name(table).split(".")[-1])
            base = current.current_snapshot()
            try:
                made = change(current)
            # pyiceberg redoes a commit another writer beat on the newer snapshot itself, unless that writer added
            # files: then it refuses (ValidationException), and the change is made again on the table as it is.
            except (CommitFailedException, ValidationException) as error:
                if attempt == COMMIT_ATTEMPTS:
                    raise IcebergError(
                        f"{_name(table)}: the commit lost to other writers {COMMIT_ATTEMPTS} times ({error})"
                    ) from error
                continue
            # The commit leaves `current` at the metadata it wrote: no need to load it again.
            committed = current.current_snapshot()
            assert committed is not None, "a commit leaves a current snapshot"
            if committed.parent_snapshot_id == (base.snapshot_id if base else None):
                # Its files are its parent's, changed: known without reading every manifest of the table again.
                # (When pyiceberg redid the commit on a newer parent, `files` reads them.)
                removed = {data_file.file_path for data_file in made.removed}
                before = self.files(current, base) if base else []
                kept = [data_file for data_file in before if data_file.file_path not in removed]
                self._remember((_name(current), committed.snapshot_id), kept + made.added)
            self._index(current, committed)
            return committed
        raise AssertionError("unreachable")

    def _index(self, table: Table, snapshot: Snapshot) -> None:
        """Record the committed snapshot's files for readers. The commit stands whatever happens here: a snapshot
        the index lacks is planned through pyiceberg."""
        if self.index is None:
            return
        paths = [data_file.file_path for data_file in self.files(table, snapshot)]
        try:
            self.index.record(self.database, _name(table).split(".")[-1], snapshot.snapshot_id, paths)
        except sqlite3.Error as error:
            warnings.warn(
                f"{_name(table)}: snapshot {snapshot.snapshot_id} not indexed for readers ({error})", stacklevel=2
            )

    def forget_expired(self, name: str) -> int | None:
        """Drop the index rows of the snapshots the table no longer has (expired: ~2 KB each, never read again);
        returns how many, None when there is no index. The index is read before the table: a commit is indexed
        after it is in the table, so one made meanwhile is never taken for an expired snapshot."""
        if self.index is None:
            return None
        indexed = self.index.snapshot_ids(self.database, name)
        gone = indexed - {snapshot.snapshot_id for snapshot in self.table(name).snapshots()}
        self.index.forget(self.database, name, gone)
        return len(gone)

    def drop(self, name: str) -> None:
        """Forget the table in the catalog (its files stay; used when a lake's tables are replaced by a test)."""
        self.catalog.drop_table((self.database, name))


def retire_hive_table(catalog: Catalog, database: str, name: str) -> None:
    """Remove the Hive-style registration of `name` (the lake before Iceberg crawled silver and gold): the Iceberg
    table takes its name, and there must not be two truths of it."""
    try:
        registered = catalog.get_table(database, name)
    except EntityNotFound:
        return
    if registered is not None and registered.get("Parameters", {}).get("table_type", "").upper() != "ICEBERG":
        catalog.delete_table(database, name)


def _transaction(table: Table) -> Transaction:
    return _transaction_type()(table)


@functools.cache
def _transaction_type() -> type[Transaction]:
    """pyiceberg's transaction, with its metadata worked out once per staged change. pyiceberg works it out on every
    read (the staged updates applied to a deep copy of the table's whole metadata: every snapshot, schema and log
    entry), and one overwrite reads it about seventeen times: half of a commit's cost, growing with the history."""
    from pyiceberg.table import Transaction

    class OnceTransaction(Transaction):
        _known: tuple[TableMetadata, tuple[object, ...], TableMetadata] | None = None

        @property
        def table_metadata(self) -> TableMetadata:
            # The table's metadata and the staged updates are immutable and replaced on change: identity says when.
            known = self._known
            if known is None or known[0] is not self._table.metadata or known[1] is not self._updates:
                known = (self._table.metadata, self._updates, super().table_metadata)
                self._known = known
            return known[2]

    return OnceTransaction


def _name(table: Table) -> str:
    return ".".join(table.name())


def _field_names(table: Table) -> set[str]:
    return {field.name for field in table.schema().fields}


def _file_schema(table: Table, path: str) -> pa.Schema:
    import pyarrow.parquet as pq

    with table.io.new_input(path).open() as stream:
        return pq.read_schema(stream)


def _iceberg_schema(schema: pa.Schema, docs: Mapping[str, str]) -> Schema:
    """The Iceberg schema of Arrow `schema`, with fresh field ids and each field's doc."""
    from pyiceberg.io.pyarrow import _ConvertToIcebergWithoutIDs, visit_pyarrow
    from pyiceberg.schema import Schema, assign_fresh_schema_ids
    from pyiceberg.types import NestedField

    fresh = assign_fresh_schema_ids(visit_pyarrow(schema, _ConvertToIcebergWithoutIDs()))
    return Schema(
        *[
            NestedField(field.field_id, field.name, field.field_type, field.required, doc=docs.get(field.name))
            for field in fresh.fields
        ]
    )


def summary_of(snapshot: Snapshot) -> Mapping[str, str]:
    return snapshot.summary.additional_properties if snapshot.summary else {}


def latest_per_month(snapshots: Iterable[Snapshot]) -> set[int]:
    """The last snapshot of each calendar month (UTC)."""
    last: dict[str, Snapshot] = {}
    for snapshot in sorted(snapshots, key=lambda s: s.timestamp_ms):
        last[f"{_utc(snapshot.timestamp_ms):%Y-%m}"] = snapshot
    return {snapshot.snapshot_id for snapshot in last.values()}
