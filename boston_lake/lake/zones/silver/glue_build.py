"""Silver on the AWS target: the Glue 5 job runs `spark_job.py` (the same SQL text as DuckDB) over the bronze
objects in S3, and this side prepares its plan and publishes what it wrote.

A year goes through the partition protocol (lake/zones/publish.py) like every other: its stage is the job's run,
which writes the year as one Parquet object under a staging prefix (`_staging/` of the silver table, which no
Iceberg reader reads: they read the table's manifests); the audits (the shrink guard) read that staged object, and
only then is it copied to a new data file of the Iceberg table and committed with pyiceberg (Iceberg's Spark
runtime is not on PyPI), so readers see the old year or the new one, never a part and never a refused one (the
same guarantees as the DuckDB path); the staging prefix is removed either way. The commit's snapshot records the
inputs' fingerprint, so a year asked for again with the same bronze and transform is not rebuilt. Launching the
job is Dagster wiring (defs/silver/glue.py), handed in as `run_job`; nothing here imports Dagster.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from boston_lake.lake import layout
from boston_lake.lake.catalog.iceberg import IcebergTables
from boston_lake.lake.log import Log
from boston_lake.lake.settings import DUCKDB_MEMORY_LIMIT
from boston_lake.lake.stores import ObjectStore, Workspace
from boston_lake.lake.zones.iceberg_year import IcebergYearBuild
from boston_lake.lake.zones.publish import (
    DEFAULT_GUARD,
    AcceptedShrink,
    ShrinkGuard,
    Staged,
    open_parquet,
    publish_partition,
    stored_object,
)
from boston_lake.lake.zones.silver import spark_job
from boston_lake.lake.zones.silver.duckdb_build import (
    CASE_ID,
    LEDGER_FIELDS,
    PartitionSummary,
    SilverError,
    SilverPartition,
    commit_silver,
    current_partition,
)
from boston_lake.lake.zones.silver.inputs import SilverInputs, find_inputs, spark_plan
from boston_lake.lake.zones.silver.model import SILVER_TABLE, SILVER_ZONE
from boston_lake.lake.zones.silver.withdrawn import WITHDRAWN_AT, with_withdrawn

# The job's script, as shipped: this very file, uploaded by `boston-lake provision` under its content hash.
SCRIPT_PATH = Path(spark_job.__file__)
SCRIPT_PREFIX = "glue/silver/"
# Under the silver table's prefix, so the job's role writes only silver/; `_` keeps it out of every crawl.
STAGING_FOLDER = "_staging"
# Pipes context and messages of every run, in the lake bucket; `provision` expires them with a lifecycle rule.
PIPES_PREFIX = "_pipes/"
PLAN_EXTRA = "silver_plan"


def script_bytes() -> bytes:
    return SCRIPT_PATH.read_bytes()


def script_key(script: bytes | None = None) -> str:
    """The code-bucket key of the job script: named by its content, so a run pins exactly the code it expects."""
    digest = hashlib.sha256(script_bytes() if script is None else script).hexdigest()[:16]
    return f"{SCRIPT_PREFIX}spark_job-{digest}.py"


@dataclass(frozen=True)
class GlueSilverJob:
    """The provisioned Glue job a silver year runs on, and where its script lives."""

    name: str
    code_bucket: str
    lake_bucket: str

    @property
    def script_location(self) -> str:
        return f"s3://{self.code_bucket}/{script_key()}"

    def start_params(self) -> dict[str, Any]:
        """StartJobRun parameters, new on every call (PipesGlueClient adds its arguments to the dict it gets)."""
        return {"JobName": self.name, "Arguments": {"--scriptLocation": self.script_location}}


@dataclass(frozen=True)
class GlueRun:
    """One year prepared for the Glue job: what it reads, its plan, and the staging prefix it writes."""

    inputs: SilverInputs
    plan: dict[str, Any]
    staging_prefix: str

    @property
    def year(self) -> int:
        return self.inputs.year


def prepare(store: ObjectStore, year: int, run_id: str | None = None) -> GlueRun:
    """The plan of one year, with s3:// paths of the bronze objects and a staging prefix of its own."""
    inputs = find_inputs(store, year)
    staging = f"{layout.table_prefix(SILVER_ZONE, SILVER_TABLE)}{STAGING_FOLDER}/{year}-{run_id or uuid.uuid4().hex}/"
    plan = {**spark_plan(inputs, store.uri), "staging_uri": store.uri(staging)}
    return GlueRun(inputs=inputs, plan=plan, staging_prefix=staging)


def job_report(messages: list[Any], year: int) -> dict[str, Any]:
    """The job's report of `year` among the custom pipes messages of its run."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("year") == year:
            ledger = message.get("ledger") or {}
            missing = [name for name in LEDGER_FIELDS if name not in ledger]
            if missing:
                raise SilverError(f"silver {year}: the Glue job's report lacks the ledger fields {missing}")
            return message
    raise SilverError(f"silver {year}: the Glue job finished without reporting the year through dagster-pipes")


def discard(store: ObjectStore, run: GlueRun) -> None:
    """Remove what a run that did not finish left under its staging prefix."""
    for leftover in list(store.list(run.staging_prefix)):
        store.delete(leftover.key)


# Runs the Glue job on a prepared year and returns its report (`job_report`); raises SilverError when it fails.
RunJob = Callable[[GlueRun], dict[str, Any]]


def build(
    tables: IcebergTables,
    year: int,
    log: Log,
    run_job: RunJob,
    run_id: str | None = None,
    *,
    force: bool = False,
    shrink: ShrinkGuard = DEFAULT_GUARD,
) -> SilverPartition:
    """One silver year by the Glue job, through the partition protocol: unless `force`, a year already built from
    the same bronze objects by the same transform is left as it is and no job runs; raises PublishRefused when the
    staged year shrinks beyond the limit (the published year stays)."""
    return publish_partition(_GlueSilverBuild(tables, year, run_job, run_id), log, force=force, shrink=shrink)


class _GlueSilverBuild(IcebergYearBuild[SilverPartition]):
    error = SilverError
    withdrawn_column = WITHDRAWN_AT

    def __init__(self, tables: IcebergTables, year: int, run_job: RunJob, run_id: str | None):
        super().__init__(tables, SILVER_ZONE, SILVER_TABLE, year, run_id)
        self.run_job = run_job
        self.run: GlueRun | None = None
        self.report: dict[str, Any] = {}
        self.withdrawn = 0

    @property
    def label(self) -> str:
        return f"silver {self.year}"

    def fingerprint(self) -> str:
        self.run = prepare(self.store, self.year, self.run_id)
        return self.run.inputs.fingerprint()

    def current(self, fingerprint: str) -> SilverPartition | None:
        assert self.run is not None, "fingerprint first"
        reason = "already built by the Glue job from these bronze files by this transform version"
        return current_partition(self, self.run.inputs, fingerprint, reason)

    def stage(self, work: Workspace, fingerprint: str) -> Staged:
        """The job's run: the one object it staged, where no reader reads."""
        run = self.run
        assert run is not None, "fingerprint first"
        try:
            self.report = self.run_job(run)
            staged = [item for item in self.store.list(run.staging_prefix) if item.key.endswith(".parquet")]
            if len(staged) != 1:
                raise SilverError(
                    f"silver {self.year}: the Glue job staged {len(staged)} Parquet objects under "
                    f"{self.store.uri(run.staging_prefix)}, not one"
                )
            rows = open_parquet(self.store, staged[0].key).metadata.num_rows
            if rows != int(self.report["rows"]):
                raise SilverError(
                    f"silver {self.year}: the Glue job reported {self.report['rows']} rows, "
                    f"{self.store.uri(staged[0].key)} holds {rows}"
                )
            with self.store.reading(staged[0].key) as spark_year:
                merged = work.folder / "staged.parquet"
                self.withdrawn = with_withdrawn(self, run.inputs, spark_year, merged, DUCKDB_MEMORY_LIMIT)
        except BaseException:
            discard(self.store, run)
            raise
        return Staged(path=merged)

    def id_column(self, schema: pa.Schema) -> str | None:
        return CASE_ID

    def publish(self, staged: Staged, accepted: AcceptedShrink | None) -> SilverPartition:
        """Commit the year the job staged, with the withdrawn cases kept, and describe it."""
        run = self.run
        assert run is not None and staged.path is not None, "staged first"
        ledger = {name: int(value) for name, value in self.report["ledger"].items()}
        rows = pq.ParquetFile(staged.path).metadata.num_rows
        key, snapshot = commit_silver(self, staged, run.inputs, rows, ledger, self.withdrawn)
        stored = stored_object(self.store, key)
        return SilverPartition(
            year=self.year,
            key=key,
            bytes=stored.size if stored else 0,
            inputs=run.inputs,
            ledger=ledger,
            summary=PartitionSummary.read(self.store, key),
            changed=True,
            reason="built by the Glue job",
            snapshot_id=snapshot.snapshot_id,
            withdrawn=self.withdrawn,
            shrink_accepted=accepted,
        )

    def discard(self, staged: Staged) -> None:
        if self.run is not None:
            discard(self.store, self.run)
