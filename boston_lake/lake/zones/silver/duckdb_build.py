"""Silver on the embedded target: DuckDB runs the transform over the bronze files, in bounded memory, into one
staged Parquet file, and the year is published as one commit of the Iceberg table `boston311.service_requests`
(readers see the old year or the new): through the partition protocol (lake/zones/publish.py), so a staged year
that loses more of the published year's cases than BOSTON_LAKE_MAX_SHRINK allows is refused and never committed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from boston_lake.lake.catalog.iceberg import PREFIX, IcebergTables, summary_of
from boston_lake.lake.duck import connect, one_row, spilling_into, sql_identifier, sql_literal
from boston_lake.lake.errors import LakeError
from boston_lake.lake.log import Log
from boston_lake.lake.memory import release_freed_memory, use_returnable_memory
from boston_lake.lake.settings import DUCKDB_MEMORY_LIMIT
from boston_lake.lake.stores import ObjectStore, Workspace
from boston_lake.lake.zones.iceberg_year import IcebergYearBuild
from boston_lake.lake.zones.publish import (
    DEFAULT_GUARD,
    AcceptedShrink,
    ShrinkGuard,
    Staged,
    publish_partition,
    stored_object,
)
from boston_lake.lake.zones.silver.inputs import SilverInputs, find_inputs
from boston_lake.lake.zones.silver.model import (
    COLUMNS,
    COMPUTED_ONCE,
    DESCRIPTION,
    DUCKDB_MACROS_SQL,
    INPUT_VIEWS,
    SCHEMA,
    SILVER_TABLE,
    SILVER_ZONE,
    SOURCE_ROW,
    SOURCE_YEAR,
    TIMEZONE,
    TRANSFORM_VERSION,
    input_columns,
    statements,
    transform_statements,
)
from boston_lake.lake.zones.silver.withdrawn import WITHDRAWN_AT, with_withdrawn

if TYPE_CHECKING:
    from pyiceberg.table.snapshots import Snapshot

LEDGER_PROPERTY = PREFIX + "ledger"  # in the summary of the snapshot that published a year
WITHDRAWN_PROPERTY = PREFIX + "withdrawn"  # ... with how many withdrawn cases it keeps
# Bronze's row group: the Parquet writer encodes a row group whole, and 30,720 rows keep it well inside the
# memory limit (larger groups spill and take several times longer; benchmarks/README.md).
ROW_GROUP_ROWS = 30_720
LEDGER_FIELDS = ("candidate_rows", "duplicates_merged", "moved_to_neighbour_year", "kept_in_file_year")
CASE_ID = "case_id"  # the column the shrink guard counts cases by


class SilverError(LakeError, RuntimeError):
    """A silver year could not be built; the message names the year and the cause."""


@dataclass(frozen=True)
class SilverSettings:
    """DuckDB's limits while building a year; hash tables and the window sort spill to disk beyond the memory limit.

    192MB: a year of 300,000 cases peaks at about 280-290 MiB RSS, Python and imports (88 MiB) included
    (benchmarks/bench_silver.py). 160MB is no faster, and one run in seven ran out of memory.
    """

    memory_limit: str = DUCKDB_MEMORY_LIMIT  # BOSTON_LAKE_DUCKDB_MEMORY_LIMIT
    threads: int = max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class PartitionSummary:
    """What a published silver year holds, read back from the file itself."""

    rows: int
    rows_by_generation: dict[str, int]
    cases_per_month: dict[str, int]  # YYYY-MM of the local open time -> cases
    local_open_hours: list[int]  # cases per hour of the day (0..23), Boston local time

    @classmethod
    def of(cls, connection: duckdb.DuckDBPyConnection, path: Path) -> PartitionSummary:
        source = f"read_parquet({sql_literal(str(path))})"
        local = f"timezone({sql_literal(TIMEZONE)}, opened_at)"
        (rows,) = one_row(connection, f"SELECT count(*) FROM {source}")
        by_generation = connection.execute(
            f"SELECT source_generation, count(*) FROM {source} GROUP BY ALL ORDER BY 1"
        ).fetchall()
        months = connection.execute(
            f"SELECT strftime({local}, '%Y-%m') AS month, count(*) FROM {source} "
            "WHERE opened_at IS NOT NULL GROUP BY ALL ORDER BY 1"
        ).fetchall()
        hours = dict(
            connection.execute(
                f"SELECT hour({local}), count(*) FROM {source} WHERE opened_at IS NOT NULL GROUP BY ALL"
            ).fetchall()
        )
        return cls(
            rows=int(rows),
            rows_by_generation={name: int(n) for name, n in by_generation},
            cases_per_month={month: int(n) for month, n in months},
            local_open_hours=[int(hours.get(hour, 0)) for hour in range(24)],
        )

    @classmethod
    def read(cls, store: ObjectStore, key: str) -> PartitionSummary:
        """The summary of the year published at `key`, read through its store."""
        with store.reading(key) as path, connect(memory_limit=None) as connection:
            return cls.of(connection, path)


@dataclass(frozen=True)
class SilverPartition:
    year: int
    key: str
    bytes: int
    inputs: SilverInputs
    ledger: dict[str, int]
    summary: PartitionSummary
    changed: bool
    reason: str
    snapshot_id: int | None  # the Iceberg snapshot that published the year
    withdrawn: int = 0  # cases the published year held that no bronze file lists any more, kept with withdrawn_at
    notes: list[str] = field(default_factory=list)
    shrink_accepted: AcceptedShrink | None = None  # a shrink beyond the limit this build was told to accept

    def metadata(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "reason": self.reason,
            "key": self.key,
            "snapshot_id": str(self.snapshot_id),
            "rows": self.summary.rows,
            "bytes": self.bytes,
            "transform_version": TRANSFORM_VERSION,
            "bronze_read": [f"{file.table} {file.year} ({file.view}, {file.rows} rows)" for file in self.inputs.files],
            "bronze_rows_read": self.inputs.rows,
            "read_as_empty": list(self.inputs.missing),
            **self.ledger,
            "rows_by_generation": self.summary.rows_by_generation,
            "withdrawn_cases": self.withdrawn,
            **({"shrink_accepted": self.shrink_accepted.metadata()} if self.shrink_accepted else {}),
        }


class SilverZone:
    """Builds silver years from the bronze in the lake's store into the Iceberg table of `tables`."""

    def __init__(
        self, tables: IcebergTables, log: Log, settings: SilverSettings = SilverSettings(), run_id: str | None = None
    ):
        use_returnable_memory()
        self.tables = tables
        self.store = tables.store
        self.log = log
        self.settings = settings
        self.run_id = run_id

    def build(self, year: int, force: bool = False, shrink: ShrinkGuard = DEFAULT_GUARD) -> SilverPartition:
        """Build the year from its bronze inputs and commit it through the partition protocol: raises PublishRefused
        when the staged year shrinks beyond the limit (the published year stays)."""
        try:
            return publish_partition(_SilverBuild(self, year, force), self.log, force=force, shrink=shrink)
        finally:
            release_freed_memory()  # a run of many years stays at the memory of one

    @contextmanager
    def _connection(self, work: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the build's limits, spilling under `work` (the partition's workspace, so a killed
        run's spill is swept by the next run of the year)."""
        # In UTC, as the Spark session of the Glue job runs; the transform assumes the same here.
        with spilling_into(
            work,
            prefix="boston_lake_silver_",
            memory_limit=self.settings.memory_limit,
            threads=self.settings.threads,
            preserve_insertion_order=False,
        ) as connection:
            connection.execute("SET parquet_metadata_cache = true")
            for statement in statements(DUCKDB_MACROS_SQL):
                connection.execute(statement)
            yield connection

    def _transform(
        self,
        connection: duckdb.DuckDBPyConnection,
        inputs: SilverInputs,
        local_files: dict[str, Path],
        destination: Path,
    ) -> dict[str, int]:
        for view, generation in INPUT_VIEWS.items():
            selects = [
                f"SELECT {', '.join(sql_identifier(name) for name, _ in generation.columns)}, "
                f"CAST({file.year} AS INTEGER) AS {SOURCE_YEAR}, file_row_number AS {SOURCE_ROW} "
                f"FROM read_parquet({sql_literal(str(local_files[file.key]))}, file_row_number = true)"
                for file in inputs.files
                if file.view == view
            ]
            empty = "SELECT " + ", ".join(
                f"CAST(NULL AS {duck_type}) AS {sql_identifier(n)}" for n, duck_type in input_columns(generation)
            )
            connection.execute(
                f"CREATE OR REPLACE TEMPORARY VIEW {view} AS "
                + ("\nUNION ALL\n".join(selects) if selects else f"{empty} WHERE false")
            )
        for statement in transform_statements(inputs.year):
            connection.execute(statement)
        # Kept as Arrow tables, outside DuckDB's memory limit, as the Spark runner caches them.
        for view in COMPUTED_ONCE:
            computed = connection.sql(f"SELECT * FROM {view}").to_arrow_table()
            connection.register(f"{view}_once", computed)
            connection.execute(f"CREATE OR REPLACE TEMPORARY VIEW {view} AS SELECT * FROM {view}_once")
        row = one_row(connection, "SELECT * FROM silver_ledger")
        names = [column[0] for column in connection.description]
        ledger = {name: int(value) for name, value in zip(names, row, strict=True)}
        output_columns = ", ".join(sql_identifier(column.name) for column in COLUMNS)
        connection.execute(
            f"COPY (SELECT {output_columns} FROM silver_service_requests) TO {sql_literal(str(destination))} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
        )
        return ledger


class _SilverBuild(IcebergYearBuild[SilverPartition]):
    """One silver year as the partition protocol builds it with DuckDB: fingerprinted by its bronze inputs."""

    error = SilverError
    withdrawn_column = WITHDRAWN_AT

    def __init__(self, zone: SilverZone, year: int, force: bool):
        super().__init__(zone.tables, SILVER_ZONE, SILVER_TABLE, year, zone.run_id)
        self.silver = zone
        self.reason = "forced rebuild" if force else "new bronze input or transform version"
        self.inputs: SilverInputs | None = None
        self.ledger: dict[str, int] = {}
        self.summary: PartitionSummary | None = None
        self.withdrawn = 0

    @property
    def label(self) -> str:
        return f"silver {self.year}"

    def fingerprint(self) -> str:
        self.inputs = find_inputs(self.store, self.year)
        return self.inputs.fingerprint()

    def current(self, fingerprint: str) -> SilverPartition | None:
        """The published year, if it was built from these very bronze files by this transform."""
        assert self.inputs is not None, "fingerprint first"
        return current_partition(
            self, self.inputs, fingerprint, "already built from these bronze files by this transform version"
        )

    def stage(self, work: Workspace, fingerprint: str) -> Staged:
        inputs = self.inputs
        assert inputs is not None, "fingerprint first"
        transformed, staged = work.folder / "transformed.parquet", work.folder / "staged.parquet"
        with ExitStack() as stack:
            local_files = {file.key: stack.enter_context(self.store.reading(file.key)) for file in inputs.files}
            try:
                # One DuckDB at a time: the transform's, and all it holds, is closed before the withdrawn cases are
                # sought (which may encode the year again in a DuckDB of its own), and the summary has its own.
                with self.silver._connection(work.folder) as connection:
                    self.ledger = self.silver._transform(connection, inputs, local_files, transformed)
                self.withdrawn = with_withdrawn(self, inputs, transformed, staged, self.silver.settings.memory_limit)
                with self.silver._connection(work.folder) as connection:  # spills under the workspace too
                    self.summary = PartitionSummary.of(connection, staged)
            except duckdb.OutOfMemoryException as error:
                raise SilverError(
                    f"silver {self.year}: DuckDB ran out of its {self.silver.settings.memory_limit} memory limit "
                    f"({error})"
                ) from error
            except duckdb.Error as error:
                read = ", ".join(self.store.uri(file.key) for file in inputs.files) or "no bronze files"
                raise SilverError(f"silver {self.year}: the transform failed on {read}: {error}") from error
        return Staged(path=staged)

    def id_column(self, schema: pa.Schema) -> str | None:
        return CASE_ID

    def publish(self, staged: Staged, accepted: AcceptedShrink | None) -> SilverPartition:
        assert staged.path is not None and self.inputs is not None and self.summary is not None, "staged first"
        size = staged.path.stat().st_size
        key, snapshot = commit_silver(self, staged, self.inputs, self.summary.rows, self.ledger, self.withdrawn)
        return SilverPartition(
            year=self.year,
            key=key,
            bytes=size,
            inputs=self.inputs,
            ledger=self.ledger,
            summary=self.summary,
            changed=True,
            reason=self.reason,
            snapshot_id=snapshot.snapshot_id,
            withdrawn=self.withdrawn,
            shrink_accepted=accepted,
        )


def commit_silver(
    build: IcebergYearBuild[SilverPartition],
    staged: Staged,
    inputs: SilverInputs,
    rows: int,
    ledger: dict[str, int],
    withdrawn: int,
) -> tuple[str, Snapshot]:
    """Commit a staged silver year (either engine's), its ledger in the snapshot's summary."""
    docs = {column.name: column.description for column in COLUMNS}
    ledger_text = json.dumps(ledger, sort_keys=True)
    return build.commit(
        staged,
        SCHEMA,
        rows,
        inputs.fingerprint(),
        DESCRIPTION,
        docs,
        **{LEDGER_PROPERTY: ledger_text, WITHDRAWN_PROPERTY: str(withdrawn)},
    )


def current_partition(
    build: IcebergYearBuild[SilverPartition], inputs: SilverInputs, fingerprint: str, reason: str
) -> SilverPartition | None:
    """The published silver year (either engine's), if the snapshot that published it names `fingerprint`."""
    published = build.publication(fingerprint)
    if published is None:
        return None
    key, snapshot = published
    stored = stored_object(build.store, key)
    ledger = json.loads(summary_of(snapshot)[LEDGER_PROPERTY])
    return SilverPartition(
        year=inputs.year,
        key=key,
        bytes=stored.size if stored else 0,
        inputs=inputs,
        ledger={name: int(value) for name, value in ledger.items()},
        summary=PartitionSummary.read(build.store, key),
        changed=False,
        reason=reason,
        snapshot_id=snapshot.snapshot_id,
        withdrawn=int(summary_of(snapshot).get(WITHDRAWN_PROPERTY, "0")),
    )
