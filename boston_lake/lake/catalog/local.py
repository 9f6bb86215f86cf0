"""The embedded catalog: Glue's data model (databases, tables, table versions, partitions) in one SQLite file.

Each row keeps the Glue dict itself as JSON, beside indexed columns for the names and partition values it
is looked up by, so what comes back is exactly what Glue's API would return. WAL mode lets queries read
while a crawl writes; every operation is one transaction, so a crash never leaves half a table behind.
Behaviour follows Glue (and moto, which the AWS target is tested against): names are lower-cased, a table's
VersionId starts at "1" and each UpdateTable archives the previous definition under the next number.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from urllib.parse import quote

from boston_lake.lake.catalog import (
    AlreadyExists,
    CatalogError,
    CrawlerRunning,
    EntityNotFound,
    GlueDict,
)
from boston_lake.lake.catalog.local_records import (
    check_unique,
    checked_partition_input,
    checked_table_input,
    dumps,
    glue_name,
    loads,
    partition_values,
    raise_missing,
    table_of,
)
from boston_lake.lake.clock import utc_now
from boston_lake.lake.stores import exclusive_flock

SCHEMA_VERSION = 1

# Each table's current definition: the version its row points to.
_CURRENT_TABLES = (
    "SELECT v.body FROM tables t JOIN table_versions v "
    "ON v.database = t.database AND v.name = t.name AND v.version = t.version "
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS databases (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tables (
    database TEXT NOT NULL REFERENCES databases (name),
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (database, name)
);
CREATE TABLE IF NOT EXISTS table_versions (
    database TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (database, name, version)
);
CREATE TABLE IF NOT EXISTS partitions (
    database TEXT NOT NULL,
    table_name TEXT NOT NULL,
    partition_values TEXT NOT NULL,
    first_value TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (database, table_name, partition_values)
);
CREATE INDEX IF NOT EXISTS partitions_by_first_value ON partitions (database, table_name, first_value);
"""


class LocalCatalog:
    """A Glue Data Catalog in a SQLite file, shared safely by the processes of one BOSTON_LAKE_HOME."""

    def __init__(self, path: Path | str, *, read_only: bool = False):
        """`read_only` is for readers (queries, status, listings): no write transaction, so they never wait
        behind a crawl, and they work on a catalog they may not write (a read-only copy of a lake)."""
        self.path = Path(path).resolve()
        self.read_only = read_only
        if read_only and not self.path.is_file():
            raise CatalogError(f"no catalog at {self.path}: nothing has been crawled into this lake yet")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            found = connection.execute("PRAGMA user_version").fetchone()[0]
            if found > SCHEMA_VERSION:
                raise CatalogError(
                    f"catalog {self.path} has schema version {found}, newer than this boston_lake "
                    f"understands ({SCHEMA_VERSION}); upgrade boston_lake or point it at another catalog"
                )
            if read_only or found == SCHEMA_VERSION:  # already set up: opening the catalog writes nothing
                return
            connection.execute("PRAGMA journal_mode=WAL")
            with _transaction(connection):
                for statement in _SCHEMA.split(";"):
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def __repr__(self) -> str:
        return f"LocalCatalog({str(self.path)!r})"

    def uri(self) -> str:
        return str(self.path)

    # Databases

    def create_database(self, name: str, description: str = "") -> None:
        name = glue_name("database", name)
        database = {"Name": name, "Description": description, "Parameters": {}, "CreateTime": utc_now()}
        with self._write() as connection:
            connection.execute(
                "INSERT INTO databases (name, body) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (name, dumps(database)),
            )

    def list_databases(self) -> list[GlueDict]:
        with self._connect() as connection:
            rows = connection.execute("SELECT body FROM databases ORDER BY name").fetchall()
        return [loads(body) for (body,) in rows]

    # Tables

    def get_table(self, database: str, name: str) -> GlueDict | None:
        database, name = glue_name("database", database), glue_name("table", name)
        with self._connect() as connection:
            self._require_database(connection, database)
            row = connection.execute(
                _CURRENT_TABLES + "WHERE t.database = ? AND t.name = ?", (database, name)
            ).fetchone()
        return loads(row[0]) if row else None

    def list_tables(self, database: str) -> list[GlueDict]:
        database = glue_name("database", database)
        with self._connect() as connection:
            self._require_database(connection, database)
            rows = connection.execute(_CURRENT_TABLES + "WHERE t.database = ? ORDER BY t.name", (database,)).fetchall()
        return [loads(body) for (body,) in rows]

    def create_table(self, database: str, table_input: GlueDict) -> None:
        database = glue_name("database", database)
        table_input = checked_table_input(table_input)
        name = table_input["Name"]
        now = utc_now()
        with self._write() as connection:
            self._require_database(connection, database)
            if self._current_version(connection, database, name) is not None:
                raise AlreadyExists(f"AlreadyExistsException: table {database}.{name} already exists in {self.path}")
            table = table_of(database, table_input, version=1, created=now, updated=now)
            connection.execute("INSERT INTO tables (database, name, version) VALUES (?, ?, 1)", (database, name))
            self._insert_version(connection, database, name, 1, table)

    def update_table(self, database: str, table_input: GlueDict) -> None:
        database = glue_name("database", database)
        table_input = checked_table_input(table_input)
        name = table_input["Name"]
        with self._write() as connection:
            self._require_database(connection, database)
            version = self._require_table(connection, database, name)
            current = self._version_body(connection, database, name, version)
            table = table_of(
                database, table_input, version=version + 1, created=current["CreateTime"], updated=utc_now()
            )
            self._insert_version(connection, database, name, version + 1, table)
            connection.execute(
                "UPDATE tables SET version = ? WHERE database = ? AND name = ?", (version + 1, database, name)
            )

    def delete_table(self, database: str, name: str) -> None:
        database, name = glue_name("database", database), glue_name("table", name)
        with self._write() as connection:
            self._require_database(connection, database)
            self._require_table(connection, database, name)
            connection.execute("DELETE FROM tables WHERE database = ? AND name = ?", (database, name))
            connection.execute("DELETE FROM table_versions WHERE database = ? AND name = ?", (database, name))
            connection.execute("DELETE FROM partitions WHERE database = ? AND table_name = ?", (database, name))

    def get_table_versions(self, database: str, name: str) -> list[GlueDict]:
        database, name = glue_name("database", database), glue_name("table", name)
        with self._connect() as connection:
            self._require_database(connection, database)
            self._require_table(connection, database, name)
            rows = connection.execute(
                "SELECT version, body FROM table_versions WHERE database = ? AND name = ? ORDER BY version DESC",
                (database, name),
            ).fetchall()
        return [{"VersionId": str(version), "Table": loads(body)} for version, body in rows]

    # Partitions

    def get_partitions(self, database: str, table: str, years: Iterable[str] | None = None) -> list[GlueDict]:
        database, table = glue_name("database", database), glue_name("table", table)
        query = "SELECT body FROM partitions WHERE database = ? AND table_name = ?"
        parameters: list[str] = [database, table]
        if years is not None:
            wanted = [str(year) for year in years]
            query += f" AND first_value IN ({', '.join('?' * len(wanted))})"
            parameters += wanted
        with self._connect() as connection:
            self._require_database(connection, database)
            self._require_table(connection, database, table)
            rows = connection.execute(query + " ORDER BY partition_values", parameters).fetchall()
        return [loads(body) for (body,) in rows]

    def batch_create_partitions(self, database: str, table: str, partition_inputs: list[GlueDict]) -> None:
        database, table = glue_name("database", database), glue_name("table", table)
        now = utc_now()
        with self._write() as connection:
            inputs = self._checked_inputs(connection, database, table, partition_inputs)
            existing = self._existing_partitions(connection, database, table, [given["Values"] for given in inputs])
            for given in inputs:
                if tuple(given["Values"]) in existing:
                    continue
                partition = {**given, "DatabaseName": database, "TableName": table, "CreationTime": now}
                connection.execute(
                    "INSERT INTO partitions (database, table_name, partition_values, first_value, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (database, table, json.dumps(given["Values"]), given["Values"][0], dumps(partition)),
                )
        if existing:
            raise AlreadyExists(
                f"AlreadyExistsException: partitions {sorted(existing)} of {database}.{table} already exist and "
                f"were left as they were; the other {len(inputs) - len(existing)} were created"
            )

    def batch_update_partitions(self, database: str, table: str, partition_inputs: list[GlueDict]) -> None:
        """Each partition keeps its CreationTime."""
        database, table = glue_name("database", database), glue_name("table", table)
        with self._write() as connection:
            inputs = self._checked_inputs(connection, database, table, partition_inputs)
            existing = self._existing_partitions(connection, database, table, [given["Values"] for given in inputs])
            for given in inputs:
                if tuple(given["Values"]) not in existing:
                    continue
                partition = {
                    **given,
                    "DatabaseName": database,
                    "TableName": table,
                    "CreationTime": existing[tuple(given["Values"])]["CreationTime"],
                }
                connection.execute(
                    "UPDATE partitions SET body = ? WHERE database = ? AND table_name = ? AND partition_values = ?",
                    (dumps(partition), database, table, json.dumps(given["Values"])),
                )
        raise_missing("updated", database, table, [given["Values"] for given in inputs], existing)

    def batch_delete_partitions(self, database: str, table: str, values: list[list[str]]) -> None:
        database, table = glue_name("database", database), glue_name("table", table)
        wanted = [partition_values(database, table, given) for given in values]
        check_unique(database, table, wanted)
        with self._write() as connection:
            self._require_database(connection, database)
            self._require_table(connection, database, table)
            existing = self._existing_partitions(connection, database, table, wanted)
            connection.executemany(
                "DELETE FROM partitions WHERE database = ? AND table_name = ? AND partition_values = ?",
                [(database, table, json.dumps(list(given))) for given in existing],
            )
        raise_missing("deleted", database, table, wanted, existing)

    # Crawls

    def crawl_lock(self, crawler: str) -> AbstractContextManager[None]:
        """An flock on a file beside the catalog: released by the kernel even if the holder is killed."""
        lock_path = self.path.with_name(self.path.name + ".crawl.lock")

        def busy(holder: str) -> CrawlerRunning:
            return CrawlerRunning(
                f"CrawlerRunningException: cannot start crawler {crawler!r}: {holder} is already crawling "
                f"catalog {self.path} (lock file {lock_path})"
            )

        return exclusive_flock(lock_path, f"crawler {crawler!r} (pid {os.getpid()})", busy)

    # Internals

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = sqlite3.connect(self._address(), timeout=30, isolation_level=None, uri=True)
        except sqlite3.Error as error:
            raise CatalogError(f"cannot open catalog {self.path}: {error}") from error
        try:
            connection.execute("PRAGMA foreign_keys=ON")
            yield connection
        except sqlite3.DatabaseError as error:
            raise CatalogError(f"catalog {self.path}: {error}") from error
        finally:
            connection.close()

    def _address(self) -> str:
        """The SQLite URI: read-only for readers; `immutable` where nobody can write (a read-only folder),
        since SQLite cannot create the WAL index a read-only reader of a WAL database otherwise needs."""
        address = f"file:{quote(str(self.path))}"
        if not self.read_only:
            return address
        if not os.access(self.path.parent, os.W_OK) and not self.path.with_name(self.path.name + "-shm").exists():
            return address + "?immutable=1"
        return address + "?mode=ro"

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as connection, _transaction(connection):
            yield connection

    def _require_database(self, connection: sqlite3.Connection, database: str) -> None:
        if connection.execute("SELECT 1 FROM databases WHERE name = ?", (database,)).fetchone() is None:
            raise EntityNotFound(f"EntityNotFoundException: database {database!r} not found in {self.path}")

    def _current_version(self, connection: sqlite3.Connection, database: str, name: str) -> int | None:
        row = connection.execute(
            "SELECT version FROM tables WHERE database = ? AND name = ?", (database, name)
        ).fetchone()
        return row[0] if row else None

    def _require_table(self, connection: sqlite3.Connection, database: str, name: str) -> int:
        version = self._current_version(connection, database, name)
        if version is None:
            raise EntityNotFound(f"EntityNotFoundException: table {database}.{name} not found in {self.path}")
        return version

    def _version_body(self, connection: sqlite3.Connection, database: str, name: str, version: int) -> GlueDict:
        (body,) = connection.execute(
            "SELECT body FROM table_versions WHERE database = ? AND name = ? AND version = ?",
            (database, name, version),
        ).fetchone()
        return loads(body)

    def _insert_version(
        self, connection: sqlite3.Connection, database: str, name: str, version: int, table: GlueDict
    ) -> None:
        connection.execute(
            "INSERT INTO table_versions (database, name, version, body) VALUES (?, ?, ?, ?)",
            (database, name, version, dumps(table)),
        )

    def _checked_inputs(
        self, connection: sqlite3.Connection, database: str, table: str, partition_inputs: list[GlueDict]
    ) -> list[GlueDict]:
        """The batch's PartitionInputs, each checked against the table's partition keys, as Glue checks them."""
        self._require_database(connection, database)
        version = self._require_table(connection, database, table)
        definition = self._version_body(connection, database, table, version)
        keys = [key["Name"] for key in definition.get("PartitionKeys", [])]
        inputs = [checked_partition_input(database, table, keys, given) for given in partition_inputs]
        check_unique(database, table, [given["Values"] for given in inputs])
        return inputs

    def _existing_partitions(
        self, connection: sqlite3.Connection, database: str, table: str, values: list[list[str]]
    ) -> dict[tuple[str, ...], GlueDict]:
        found = {}
        for given in values:
            row = connection.execute(
                "SELECT body FROM partitions WHERE database = ? AND table_name = ? AND partition_values = ?",
                (database, table, json.dumps(given)),
            ).fetchone()
            if row:
                found[tuple(given)] = loads(row[0])
        return found


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE takes the write lock up front, so concurrent writers queue instead of failing midway."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
