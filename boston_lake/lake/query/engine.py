"""SQL over the catalog's tables with DuckDB, reading the lake the way Athena reads it through Glue.

Silver and gold are Iceberg tables: each is read from pyiceberg's file plan (the data files of the current
snapshot, or of the snapshot current at `as_of`, or of `snapshot_id`), since DuckDB's iceberg extension cannot
be installed offline. For bronze, the catalog is the only source of truth: a table is queryable once the crawler
has registered it, and it holds exactly the files of its registered partitions (a partition removed from the
catalog disappears from results even if its files remain). Each partition is read with its own columns and the table's
columns are projected on top, so a column a partition lacks is NULL and the partition value is a string
column, as Athena has it. Every query first checks the catalog and the files, so a crawl in another process
is seen at once.
"""

from __future__ import annotations

import re
import tempfile
import threading
from dataclasses import dataclass
from types import TracebackType

import duckdb
import pyarrow as pa

from boston_lake.lake.catalog import Catalog, EntityNotFound, GlueDict
from boston_lake.lake.catalog.iceberg_plans import PlanSource, ReadPlan, TimeTravel
from boston_lake.lake.catalog.scan import data_objects
from boston_lake.lake.duck import connect, sql_identifier, sql_literal
from boston_lake.lake.errors import LakeError
from boston_lake.lake.stores import ObjectStore, StoredObject
from boston_lake.lake.tables import DATABASE
from boston_lake.lake.zones.bronze import repair_hint

_DUCKDB_TYPES = {
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "long": "BIGINT",
    "date": "DATE",
    "binary": "BLOB",
}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


class QueryError(LakeError, RuntimeError):
    """A query could not run; the message names the table or carries the SQL."""


@dataclass(frozen=True)
class _Partition:
    """One registered partition as a SELECT of the table's columns from its own files."""

    values: tuple[str, ...]
    sql: str
    files: tuple[StoredObject, ...]  # with sizes and times, so a rewritten file re-binds the view


@dataclass(frozen=True)
class _View:
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type) of the table, partition keys last
    partitions: tuple[_Partition, ...]

    @property
    def sql(self) -> str:
        if not self.partitions:
            empty = [f"CAST(NULL AS {duck_type}) AS {sql_identifier(column)}" for column, duck_type in self.columns]
            return f"SELECT {', '.join(empty)} WHERE false"
        return "\nUNION ALL\n".join(partition.sql for partition in self.partitions)


class DuckDBQueryEngine:
    """Each catalog table as a view `<database>.<table>` in an in-process DuckDB; one query at a time.

    It only reads: SELECT is the one statement it runs (SHOW TABLES and DESCRIBE among them: `boston311` is the
    current schema), and DuckDB may touch no file outside the lake (`enable_external_access` off, the lake's
    folder in `allowed_directories`, the configuration locked). DuckDB also allows its temp directory, by default
    `.tmp` of the current folder, so it spills to a private one of its own instead.
    """

    def __init__(
        self,
        catalog: Catalog,
        store: ObjectStore,
        database: str = DATABASE,
        iceberg: PlanSource | None = None,
        travel: TimeTravel | None = None,
    ):
        self.catalog = catalog
        self.store = store
        self.database = database
        self.iceberg = iceberg
        self.travel = travel or TimeTravel()
        if iceberg is None and self.travel != TimeTravel():
            raise QueryError("the lake has no Iceberg tables yet: there is no history to read (materialize silver)")
        # In UTC, as Athena works: results must not depend on the machine's time zone. No memory limit of the
        # builds: a query may read the whole lake, so DuckDB keeps its own (80% of RAM).
        self._spill = tempfile.TemporaryDirectory(prefix="boston-lake-query-")
        self._connection = connect(memory_limit=None, temp_directory=self._spill.name)
        # Binding a table's view reads every file's footer; DuckDB may keep them between queries because it
        # re-reads a footer whose file's modification time changed (or is under 10 s old): a rewritten year
        # is seen at once, and a query of an unchanged lake reads no footer twice.
        self._connection.execute("SET parquet_metadata_cache = true")
        self._connection.execute(f"SET allowed_directories = [{sql_literal(store.uri('').rstrip('/') + '/')}]")
        schema = sql_identifier(database)
        self._connection.execute(f"CREATE SCHEMA {schema}")
        self._connection.execute(f"USE {schema}")
        self._connection.execute("SET enable_external_access = false")
        self._connection.execute("SET lock_configuration = true")
        self._lock = threading.Lock()
        self._views: dict[str, _View] = {}
        # Which tables a query names is parsed on a connection that holds no views: DuckDB expands a view it holds
        # when asked for a query's tables, and fails on the views' file lists, so every query after the first
        # found no names and re-listed every table's files.
        self._parser = connect(memory_limit=None)

    def __enter__(self) -> DuckDBQueryEngine:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._parser.close()
        self._connection.close()
        self._spill.cleanup()

    def query(self, sql: str) -> pa.Table:
        with self._lock:
            self._refuse_writes(sql)
            known, broken = self._refresh_views(self._named_tables(sql))
            try:
                relation = self._connection.sql(sql)
                return relation.to_arrow_table() if relation is not None else pa.table({})
            except duckdb.CatalogException as error:
                tables = (
                    ", ".join(f"{self.database}.{name}" for name in sorted(known)) or "none (run the crawler first)"
                )
                unreadable = "".join(
                    f"\n{self.database}.{name} is not queryable: {why}" for name, why in broken.items()
                )
                raise QueryError(f"{error}\nknown tables: {tables}{unreadable}\nSQL: {sql}") from error
            except duckdb.PermissionException as error:
                raise QueryError(f"boston-lake query reads the lake and nothing else: {error}\nSQL: {sql}") from error
            except duckdb.Error as error:
                raise QueryError(f"{error}\nSQL: {sql}") from error

    def _refuse_writes(self, sql: str) -> None:
        try:
            statements = self._connection.extract_statements(sql)
        except duckdb.Error as error:
            raise QueryError(f"{error}\nSQL: {sql}") from error
        # Named by the statement's own first word: DuckDB types INSTALL as LOAD, for one.
        refused = [
            statement.query.split(maxsplit=1)[0].upper()
            for statement in statements
            if statement.type != duckdb.StatementType.SELECT
        ]
        if refused:
            raise QueryError(
                f"boston-lake query is read-only: it runs SELECT statements over the lake and refuses "
                f"{', '.join(refused)}\nSQL: {sql}"
            )

    def _named_tables(self, sql: str) -> set[str] | None:
        """The tables of this database that `sql` names; None when it may reach others (SHOW TABLES, the
        information schema, a name that is no table of the catalog yet): then every view is brought up to date."""
        try:
            named = self._parser.get_table_names(sql, qualified=True)
        except duckdb.Error:
            return None
        own = {name.removeprefix(f"{self.database}.") for name in named}
        return own if own and not any("." in name for name in own) else None

    def _refresh_views(self, named: set[str] | None = None) -> tuple[list[str], dict[str, str]]:
        """(queryable tables, tables whose catalog entry cannot be read, with the reason); only the `named` tables
        when each of them is in the catalog.

        A view is re-created only when its SQL or its files changed: DuckDB reads the footers of the files
        it names when it binds a view, which would otherwise be paid twice per query.
        """
        schema = sql_identifier(self.database)
        views: dict[str, _View] = {}
        broken: dict[str, str] = {}
        if self.iceberg is not None:  # silver and gold: an Iceberg table is read as its plan says
            plans, unreadable = self.iceberg.read_plan(self.travel, named)
            views = {name: _iceberg_view(plan) for name, plan in plans.items()}
            broken.update(unreadable)
        if named is None or not named <= views.keys():  # the crawled tables, unless the query names none of them
            try:
                tables = self.catalog.list_tables(self.database)
            except EntityNotFound:
                tables = []
            for table in tables:
                if table["Name"] in views or (named is not None and table["Name"] not in named):
                    continue
                try:
                    views[table["Name"]] = self._view(table)
                except QueryError as error:
                    broken[table["Name"]] = str(error)
        if named is not None and not named <= views.keys() | broken.keys():
            return self._refresh_views()  # a name the catalog does not hold: the error lists every table
        if named is not None:  # the other views stay as they are; a query that needs them refreshes them
            views = {**{name: view for name, view in self._views.items() if name not in named}, **views}
        for name in self._views.keys() - views.keys():
            self._connection.execute(f"DROP VIEW {schema}.{sql_identifier(name)}")
        for name, view in list(views.items()):
            if self._views.get(name) == view:
                continue
            try:
                self._create_view(name, view)
            except duckdb.Error:
                views[name] = view = self._fence_damaged(name, view)
                try:
                    self._create_view(name, view)
                except duckdb.Error as error:
                    broken[name] = f"its files do not match the catalog ({error}); recrawl it"
                    del views[name]
                    self._connection.execute(f"DROP VIEW IF EXISTS {schema}.{sql_identifier(name)}")
        self._views = views
        return list(views), broken

    def _create_view(self, name: str, view: _View) -> None:
        self._connection.execute(
            f"CREATE OR REPLACE VIEW {sql_identifier(self.database)}.{sql_identifier(name)} AS {view.sql}"
        )

    def _fence_damaged(self, name: str, view: _View) -> _View:
        """The view with each partition whose files DuckDB cannot read replaced by one that raises, naming the
        file and the repair, only when a query reaches it: a filter on the partition key prunes it unread."""
        partitions = []
        for partition in view.partitions:
            try:
                self._connection.execute(f"DESCRIBE {partition.sql}")
                partitions.append(partition)
            except duckdb.Error as error:
                keys = view.columns[len(view.columns) - len(partition.values) :]
                label = " ".join(f"{key}={value}" for (key, _), value in zip(keys, partition.values, strict=True))
                cause = str(error).splitlines()[0]
                if isinstance(error, duckdb.BinderException):
                    problem = f"its files do not match the catalog ({cause}); recrawl it"
                else:
                    problem = f"damaged ({cause}); repair: {_repair(name, partition.values)}"
                message = f"{self.database}.{name} {label}: {problem}"
                failing = _failing_select(view.columns, partition.values, message)
                partitions.append(_Partition(partition.values, failing, partition.files))
        return _View(view.columns, tuple(partitions))

    def _view(self, table: GlueDict) -> _View:
        name = f"{self.database}.{table['Name']}"
        columns = [(column["Name"], _duckdb_type(name, column)) for column in table["StorageDescriptor"]["Columns"]]
        glue_types = {column["Name"]: column["Type"] for column in table["StorageDescriptor"]["Columns"]}
        keys = [key["Name"] for key in table.get("PartitionKeys", [])]
        if keys:
            partitions = [
                (partition["Values"], partition["StorageDescriptor"])
                for partition in self.catalog.get_partitions(self.database, table["Name"])
            ]
        else:
            partitions = [([], table["StorageDescriptor"])]
        selects = []
        for values, descriptor in partitions:
            files, _ = data_objects(self.store, location_key(self.store, name, descriptor["Location"]))
            if not files:
                continue
            own_types = {column["Name"]: column["Type"] for column in descriptor.get("Columns", [])}
            projected = [_projection(column, duck_type, own_types, glue_types) for column, duck_type in columns]
            projected += [
                f"{sql_literal(value)} AS {sql_identifier(key)}" for key, value in zip(keys, values, strict=True)
            ]
            paths = ", ".join(sql_literal(self.store.uri(stored.key)) for stored in files)
            # Unifying files by name costs a read of every footer at bind time; one file has nothing to unify.
            by_name = "true" if len(files) > 1 else "false"
            selects.append(
                _Partition(
                    tuple(values),
                    f"SELECT {', '.join(projected)} "
                    f"FROM read_parquet([{paths}], union_by_name = {by_name}, hive_partitioning = false)",
                    tuple(files),
                )
            )
        return _View(tuple(columns + [(key, "VARCHAR") for key in keys]), tuple(selects))


def _iceberg_view(plan: ReadPlan) -> _View:
    """An Iceberg table as of its plan: its data files, unified by column name when the table's schema ever changed
    (a file written before a column was added lacks it). A table of one schema is read without unifying: binding
    the view then reads one footer instead of every file's, and DuckDB still matches each file's columns by name
    (a file without one of them fails the query naming it)."""
    typed = tuple((name, _duckdb_type(name, {"Name": name, "Type": glue_type})) for name, glue_type in plan.columns)
    if not plan.paths:
        return _View(typed, ())
    files = ", ".join(sql_literal(path) for path in plan.paths)
    projected = ", ".join(sql_identifier(name) for name, _ in typed)
    unify = "false" if plan.one_schema else "true"
    sql = f"SELECT {projected} FROM read_parquet([{files}], union_by_name = {unify}, hive_partitioning = false)"
    return _View(typed, (_Partition((), sql, ()),))


def location_key(store: ObjectStore, table: str, location: str) -> str:
    """The store key prefix of a catalog Location (the crawler writes Locations with store.uri)."""
    root = store.uri("").rstrip("/") + "/"
    if not location.startswith(root):
        raise QueryError(f"table {table}: Location {location} is outside the store {root}; recrawl the table")
    return location[len(root) :].rstrip("/") + "/"


def _failing_select(columns: tuple[tuple[str, str], ...], values: tuple[str, ...], message: str) -> str:
    """A partition that raises `message` when a query reads it; its key values stay constants to prune on."""
    data = columns[: len(columns) - len(values)]
    keys = columns[len(columns) - len(values) :]
    projected = [f"CAST(error({sql_literal(message)}) AS {data[0][1]}) AS {sql_identifier(data[0][0])}"]
    projected += [f"CAST(NULL AS {duck_type}) AS {sql_identifier(column)}" for column, duck_type in data[1:]]
    projected += [
        f"{sql_literal(value)} AS {sql_identifier(key)}" for (key, _), value in zip(keys, values, strict=True)
    ]
    return f"SELECT {', '.join(projected)}"


def _repair(table: str, values: tuple[str, ...]) -> str:
    if len(values) == 1 and values[0].isdigit():
        return f"rebuild it with `{repair_hint(table, int(values[0]))}`, then crawl"
    return "rebuild the partition's files, then crawl"


def _projection(column: str, duck_type: str, own_types: dict[str, str], glue_types: dict[str, str]) -> str:
    """The table's column from one partition: NULL if the partition lacks it, cast if its type differs."""
    if column not in own_types:
        return f"CAST(NULL AS {duck_type}) AS {sql_identifier(column)}"
    if own_types[column] != glue_types[column]:
        return f"CAST({sql_identifier(column)} AS {duck_type}) AS {sql_identifier(column)}"
    return sql_identifier(column)


def _duckdb_type(table: str, column: GlueDict) -> str:
    glue_type = column["Type"].lower()
    decimal = _DECIMAL.match(glue_type)
    if decimal:
        return f"DECIMAL({decimal.group(1)}, {decimal.group(2)})"
    if glue_type not in _DUCKDB_TYPES:
        raise QueryError(
            f"table {table}: column {column['Name']} has Glue type {column['Type']!r}, which has no DuckDB type here"
        )
    return _DUCKDB_TYPES[glue_type]
