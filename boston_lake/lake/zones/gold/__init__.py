"""Gold tables: answers to the questions people keep asking, built from one silver year by SQL kept here.

Each table is one SQL file over a view named `silver` (one year of `silver/service_requests`), run by DuckDB
in-process on both targets: a silver year is tens of MB and its answer a few thousand rows, so reading it
through the object store (a local folder, or S3 downloaded to a scratch file) costs seconds, where a Glue
job would bill a minute of two DPU per year and Athena CTAS cannot replace one partition in place. The year
is published as one commit of the gold table's Iceberg table through the partition protocol
(lake/zones/publish.py), so readers see the old year or the new one, and a year whose silver data files and SQL
are unchanged is not built again (the snapshot that published it records their fingerprint).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from boston_lake.lake.catalog.iceberg import PREFIX, ROWS_PROPERTY, IcebergTables, summary_of
from boston_lake.lake.duck import connect, sql_literal
from boston_lake.lake.errors import LakeError
from boston_lake.lake.log import Log
from boston_lake.lake.settings import DUCKDB_MEMORY_LIMIT
from boston_lake.lake.stores import Workspace
from boston_lake.lake.zones.iceberg_year import IcebergYearBuild
from boston_lake.lake.zones.publish import AcceptedShrink, Staged, open_parquet, publish_partition
from boston_lake.lake.zones.silver.model import SILVER_TABLE
from boston_lake.lake.zones.silver.withdrawn import WITHDRAWN_AT

GOLD_ZONE = "gold"
SILVER_ROWS_PROPERTY = PREFIX + "silver-rows"  # in the summary of the snapshot that published a year
LOG = logging.getLogger(__name__)


class GoldError(LakeError, RuntimeError):
    """A gold year could not be built; the message names the silver files or the SQL at fault."""


@dataclass(frozen=True)
class GoldTable:
    name: str
    sql_file: str
    description: str
    columns: tuple[tuple[str, str], ...]  # (name, what it holds) of every column the SQL writes, and the year

    @property
    def sql(self) -> str:
        return resources.files(__package__).joinpath(self.sql_file).read_text(encoding="utf-8")


SERVICE_LEVELS = GoldTable(
    "service_levels",
    "service_levels.sql",
    "Per month (local) x source system x neighborhood x case type x department, and per year by neighborhood "
    "and by department (column grain): cases opened, closed, still open, median and p90 hours to close, "
    "on-time share.",
    (
        (
            "grain",
            "which rows these are: 'month' (the detail), 'year_neighborhood' or 'year_department'; sum counts "
            "within one grain only",
        ),
        ("month", "first day of the month the cases were opened, Boston local time; null at the year grains"),
        ("source_system", "legacy | new_system: the CRM that recorded the cases; null at the year grains"),
        (
            "neighborhood",
            "neighborhood of the cases; null at the year_department grain, or where the source left it blank",
        ),
        ("case_type", "request type (silver case_type); null at the year grains, or where the source left it blank"),
        (
            "department",
            "department of the cases; null at the year_neighborhood grain, or where the source left it blank",
        ),
        ("opened", "cases opened in this group"),
        ("closed", "of those, cases closed by the time silver was built"),
        ("still_open", "of those, cases not closed when silver was built"),
        (
            "median_hours_to_close",
            "median hours from opening to closing of the closed cases (a close before the open left out)",
        ),
        ("p90_hours_to_close", "90th percentile of the hours from opening to closing of the closed cases"),
        ("with_on_time", "cases whose source says ONTIME or OVERDUE (silver on_time not null)"),
        ("on_time", "cases the source marks ONTIME against their service-level target (silver on_time true): a count"),
        ("on_time_share", "on_time / with_on_time; null where no case has an on-time verdict"),
        ("closed_before_opened", "cases whose close time is before their open time (a source error)"),
        ("year", "partition key: the silver year, the year of the open time in Boston local time"),
    ),
)
INTAKE = GoldTable(
    "intake",
    "intake.sql",
    "Cases opened per local day, weekday and hour of day and channel: the shape of demand.",
    (
        ("opened_date", "the day the cases were opened, Boston local time"),
        ("weekday", "ISO weekday of opened_date: 1 = Monday ... 7 = Sunday"),
        ("hour", "hour of the day the cases were opened, Boston local time (0-23)"),
        ("channel", "how the cases came in (silver channel); null where the source left it blank"),
        ("cases_opened", "cases opened in this day, hour and channel"),
        ("year", "partition key: the silver year, the year of the open time in Boston local time"),
    ),
)
GOLD_TABLES = (SERVICE_LEVELS, INTAKE)


@dataclass(frozen=True)
class GoldPartition:
    table: str
    year: int
    key: str
    rows: int
    silver_rows: int
    silver_files: tuple[str, ...]
    schema: pa.Schema
    snapshot_id: int
    changed: bool = True
    reason: str = "new silver year or SQL"


def build_gold_partition(
    tables: IcebergTables,
    table: GoldTable,
    year: int,
    *,
    memory_limit: str = DUCKDB_MEMORY_LIMIT,
    log: Log | None = None,
    force: bool = False,
    run_id: str | None = None,
) -> GoldPartition:
    """Run `table`'s SQL over silver `year` and commit the result as that year of the gold table, through the
    partition protocol; DuckDB may use `memory_limit` (BOSTON_LAKE_DUCKDB_MEMORY_LIMIT; a year of 300,000 cases
    needs under 64MB). A year already built from the same silver data files by the same SQL is left as it is."""
    with GoldRun(tables, table, memory_limit=memory_limit, log=log, force=force, run_id=run_id) as run:
        [built] = run.build([year])
    return built


class GoldRun:
    """The years of one gold table that one run builds, each through the partition protocol, one after another.

    What a run does once, not once per year: list silver's and the gold table's data files (each listing reads
    every manifest of its table; a year's build changes that year alone), load the gold table (a commit leaves it
    current), open DuckDB. And the SQL of the years to build runs in a thread of its own, ahead of the commits: a
    year's SQL keeps one core busy in DuckDB (a silver year is one row group), its Iceberg commit the other in
    Python. A year is built ahead only when it is not already built from the same silver files; the protocol
    decides again inside the year's claim, and a year it builds that was not built ahead runs its SQL then."""

    def __init__(
        self,
        tables: IcebergTables,
        table: GoldTable,
        *,
        memory_limit: str = DUCKDB_MEMORY_LIMIT,
        log: Log | None = None,
        force: bool = False,
        run_id: str | None = None,
    ):
        self.tables = tables
        self.table = table
        self.memory_limit = memory_limit
        self.log = log or LOG
        self.force = force
        self.run_id = run_id
        self.years_ahead: list[int] = []  # whose SQL ran ahead of the commits
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> GoldRun:
        with contextlib.ExitStack() as stack:
            # In UTC, as every lake connection: local time only where the SQL asks for it.
            self.connection = stack.enter_context(connect(memory_limit=self.memory_limit))
            # The answers computed ahead, in the lake's staging area (a killed run's are swept by the next), removed
            # at the end of the run unless their year took them: after the SQL thread has stopped writing.
            self.answers_ahead = stack.enter_context(contextlib.ExitStack())
            ahead = stack.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="gold-sql"))
            stack.callback(ahead.shutdown, cancel_futures=True)  # a failed run waits for one year's SQL, no more
            self.ahead = ahead
            self.silver_keys = self.tables.keys_by_year(SILVER_TABLE)
            self.gold_keys = self.tables.keys_by_year(self.table.name)
            self.iceberg = self.tables.load(self.table.name)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def build(self, years: Sequence[int]) -> list[GoldPartition]:
        builds = [_GoldBuild(self, year) for year in years]
        for build in builds:
            try:
                fingerprint = build.fingerprint()
            except GoldError:  # no silver year: its build says so, in its turn
                continue
            if self.force or build.current(fingerprint) is None:
                build.built_ahead = (fingerprint, self.sql(build, fingerprint))
                self.years_ahead.append(build.year)
        built = []
        for build in builds:
            build.iceberg = self.iceberg  # as the year before left it: current
            built.append(publish_partition(build, self.log, force=self.force))
            self.iceberg = build.iceberg
        return built

    def sql(self, build: _GoldBuild, fingerprint: str) -> Future[tuple[Path, int]]:
        """The year's answer in a scratch file, and the silver rows it read, once the SQL thread gets to it (the
        only thread that uses the run's DuckDB: the SQL names its input `silver`)."""
        result = self.answers_ahead.enter_context(self.tables.store.scratch_file(".parquet"))
        return self.ahead.submit(self._sql, build.year, list(build.silver_files), result)

    def _sql(self, year: int, silver_files: list[str], result: Path) -> tuple[Path, int]:
        with contextlib.ExitStack() as stack:
            paths = [stack.enter_context(self.tables.store.reading(key)) for key in silver_files]
            silver_uris = [self.tables.store.uri(key) for key in silver_files]
            return result, _run(self.table, year, paths, result, silver_uris, self.connection)


class _GoldBuild(IcebergYearBuild[GoldPartition]):
    """One gold year as the partition protocol builds it: fingerprinted by its silver data files and the SQL."""

    error = GoldError

    def __init__(self, run: GoldRun, year: int):
        super().__init__(run.tables, GOLD_ZONE, run.table.name, year, run.run_id, iceberg=run.iceberg)
        self.gold = run.table
        self.run = run
        self.listed_gold: Mapping[int, Sequence[str]] | None = run.gold_keys  # as published; None once committed
        self.silver_files: list[str] = []
        self.silver_rows = 0
        self.built_from = ""
        self.built_ahead: tuple[str, Future[tuple[Path, int]]] | None = None  # (fingerprint, the SQL's outcome)

    @property
    def label(self) -> str:
        return f"gold/{self.table} {self.year}"

    def fingerprint(self) -> str:
        # Iceberg never rewrites a committed data file: its key names its content.
        self.silver_files = sorted(self.run.silver_keys.get(self.year, ()))
        if not self.silver_files:
            raise GoldError(
                f"{self.label}: the silver table {self.tables.database}.{SILVER_TABLE} has no data for {self.year}; "
                f"materialize silver/{SILVER_TABLE} for {self.year} first"
            )
        described = {"sql": hashlib.sha256(self.gold.sql.encode()).hexdigest(), "silver": self.silver_files}
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()

    def published_file(self) -> str | None:
        if self.listed_gold is None:
            return super().published_file()
        keys = self.listed_gold.get(self.year, ())
        return keys[0] if len(keys) == 1 else None

    def current(self, fingerprint: str) -> GoldPartition | None:
        """The published year, if it was built from these very silver data files by this SQL."""
        published = self.publication(fingerprint)
        if published is None:
            return None
        key, snapshot = published
        summary = summary_of(snapshot)
        return self._partition(
            key,
            int(summary[ROWS_PROPERTY]),
            int(summary[SILVER_ROWS_PROPERTY]),
            open_parquet(self.store, key).schema_arrow,
            snapshot.snapshot_id,
            changed=False,
            reason="already built from these silver data files by this SQL",
        )

    def stage(self, work: Workspace, fingerprint: str) -> Staged:
        result = work.folder / "staged.parquet"
        self.built_from = fingerprint
        ahead = self.built_ahead
        answer = ahead[1] if ahead is not None and ahead[0] == fingerprint else self.run.sql(self, fingerprint)
        path, self.silver_rows = answer.result()
        shutil.move(path, result)
        return Staged(path=result)

    def publish(self, staged: Staged, accepted: AcceptedShrink | None) -> GoldPartition:
        assert staged.path is not None, "staged first"
        written = pq.ParquetFile(staged.path)
        rows, schema = written.metadata.num_rows, written.schema_arrow
        extra = {SILVER_ROWS_PROPERTY: str(self.silver_rows)}
        key, snapshot = self.commit(
            staged, schema, rows, self.built_from, self.gold.description, dict(self.gold.columns), **extra
        )
        self.listed_gold = None
        return self._partition(key, rows, self.silver_rows, schema, snapshot.snapshot_id)

    def _partition(
        self, key: str, rows: int, silver_rows: int, schema: pa.Schema, snapshot_id: int, **outcome: Any
    ) -> GoldPartition:
        files = tuple(self.silver_files)
        return GoldPartition(self.table, self.year, key, rows, silver_rows, files, schema, snapshot_id, **outcome)


def _run(
    table: GoldTable,
    year: int,
    silver_paths: list[Path],
    result: Path,
    silver_uris: list[str],
    connection: duckdb.DuckDBPyConnection,
) -> int:
    """Write the query's rows, with the year they answer for, to `result`; returns the silver rows read."""
    try:
        read = connection.read_parquet([str(path) for path in silver_paths], union_by_name=True)
        # Cases the source withdrew stay in silver, marked; the answers count the cases the source lists.
        live = read.filter(f"{WITHDRAWN_AT} IS NULL") if WITHDRAWN_AT in read.columns else read
        live.create_view("silver", replace=True)
        try:
            [(silver_rows,)] = connection.sql("SELECT count(*) FROM silver").fetchall()
            connection.execute(
                f"COPY (SELECT answer.*, CAST({int(year)} AS INTEGER) AS year "
                f"FROM (\n{table.sql.strip().rstrip(';')}\n) AS answer) "
                f"TO {sql_literal(str(result))} (FORMAT parquet, COMPRESSION zstd)"
            )
        finally:
            connection.execute("DROP VIEW silver")  # a connection that builds the next year too
    except duckdb.Error as error:
        raise GoldError(
            f"gold/{table.name} {year}: {table.sql_file} failed on silver {', '.join(silver_uris)}: {error}"
        ) from error
    return int(silver_rows)
