"""Silver on the AWS target: the Glue 5 job runs `spark_job.py` (the same SQL text as DuckDB) over the bronze
objects in S3, and this side prepares its plan and publishes what it wrote.

A year goes through the partition protocol (lake/zones/publish.py) like every other: its stage is the job's run,
which writes the year as one Parquet object under a staging prefix (`_staging/` of the silver table, which
neither crawler reads); the audits (the shrink guard) read that staged object, and only then is it copied to the
year's key in one S3 copy, so readers see the old year or the new one, never a part and never a refused one (the
same guarantees as the DuckDB path and bronze); the staging prefix is removed either way. Beside the year it
leaves a build record (Spark cannot put the inputs' fingerprint in the footer, as the DuckDB path does), so a year
asked for again with the same bronze and transform is not rebuilt. Launching the job is Dagster wiring
(defs/silver/glue.py), handed in as `run_job`; nothing here imports Dagster.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from boston_lake.lake import layout
from boston_lake.lake.log import Log
from boston_lake.lake.stores import ObjectStore, StoredObject, Workspace
from boston_lake.lake.zones.publish import (
    DEFAULT_GUARD,
    AcceptedShrink,
    ObjectRecord,
    PartitionBuild,
    ShrinkGuard,
    Staged,
    open_parquet,
    publish_partition,
    sha256_of_object,
    stored_object,
)
from boston_lake.lake.zones.silver import spark_job
from boston_lake.lake.zones.silver.duckdb_build import (
    CASE_ID,
    LEDGER_FIELDS,
    PartitionSummary,
    SilverError,
    SilverPartition,
)
from boston_lake.lake.zones.silver.inputs import SilverInputs, find_inputs, spark_plan
from boston_lake.lake.zones.silver.model import SILVER_TABLE, SILVER_ZONE

# The job's script, as shipped: this very file, uploaded by `boston-lake provision` under its content hash.
SCRIPT_PATH = Path(spark_job.__file__)
SCRIPT_PREFIX = "glue/silver/"
# Under the silver table's prefix, so the job's role writes only silver/; `_` keeps it out of every crawl.
STAGING_FOLDER = "_staging"
# Pipes context and messages of every run, in the lake bucket; `provision` expires them with a lifecycle rule.
PIPES_PREFIX = "_pipes/"
PLAN_EXTRA = "silver_plan"
# Beside the year's object; the leading `_` keeps it out of crawls and out of Athena's reads.
BUILD_RECORD = "_glue_build.json"


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


def build_record_key(year: int) -> str:
    return layout.partition_prefix(SILVER_ZONE, SILVER_TABLE, year) + BUILD_RECORD


def _recorded(record: dict[str, Any], key: str) -> ObjectRecord | None:
    """The object a build record says it published (a record without `sha256` predates content identity)."""
    published = record.get("published")
    if not isinstance(published, dict) or published.get("key") != key:
        return None
    return ObjectRecord(key, int(published["size"]), str(published["last_modified"]), published.get("sha256"))


def _is_recorded_object(store: ObjectStore, stored: StoredObject, recorded: ObjectRecord) -> bool:
    """The object at the key is the one the record names: untouched since, or (copied, restored) the same content;
    another writer's object, or a touched one under a record without its content's sha256, is not."""
    if stored.size != recorded.size:
        return False
    if recorded.untouched(stored):
        return True
    return recorded.sha256 is not None and sha256_of_object(store, stored.key) == recorded.sha256


def current(store: ObjectStore, inputs: SilverInputs) -> SilverPartition | None:
    """The published year, if the Glue job built it from these very bronze objects by this transform: its build
    record names the inputs' fingerprint and the object it published, and that object is still there."""
    key, record_key = layout.data_key(SILVER_ZONE, SILVER_TABLE, inputs.year), build_record_key(inputs.year)
    if not store.exists(record_key):
        return None
    record = json.loads(store.get_bytes(record_key))
    stored, recorded = stored_object(store, key), _recorded(record, key)
    if stored is None or recorded is None or record.get("fingerprint") != inputs.fingerprint():
        return None
    if not _is_recorded_object(store, stored, recorded):
        return None
    return SilverPartition(
        year=inputs.year,
        key=key,
        bytes=stored.size,
        inputs=inputs,
        ledger={name: int(value) for name, value in record["ledger"].items()},
        summary=PartitionSummary.read(store, key),
        changed=False,
        reason="already built by the Glue job from these bronze files by this transform version",
    )


# Runs the Glue job on a prepared year and returns its report (`job_report`); raises SilverError when it fails.
RunJob = Callable[[GlueRun], dict[str, Any]]


def build(
    store: ObjectStore,
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
    return publish_partition(_GlueSilverBuild(store, year, run_job, run_id), log, force=force, shrink=shrink)


class _GlueSilverBuild(PartitionBuild[SilverPartition]):
    error = SilverError

    def __init__(self, store: ObjectStore, year: int, run_job: RunJob, run_id: str | None):
        super().__init__(store, SILVER_ZONE, SILVER_TABLE, year, layout.data_key(SILVER_ZONE, SILVER_TABLE, year))
        self.run_job = run_job
        self.run_id = run_id
        self.run: GlueRun | None = None
        self.report: dict[str, Any] = {}

    @property
    def label(self) -> str:
        return f"silver {self.year}"

    def fingerprint(self) -> str:
        self.run = prepare(self.store, self.year, self.run_id)
        return self.run.inputs.fingerprint()

    def current(self, fingerprint: str) -> SilverPartition | None:
        assert self.run is not None, "fingerprint first"
        return current(self.store, self.run.inputs)

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
        except BaseException:
            discard(self.store, run)
            raise
        return Staged(key=staged[0].key)

    def id_column(self, schema: pa.Schema) -> str | None:
        return CASE_ID

    def publish(self, staged: Staged, accepted: AcceptedShrink | None) -> SilverPartition:
        """Publish the one object the job staged as the year's object, whole, describe it, and record the build.

        The old build record goes first: a publish cut short leaves none, and the year is built again."""
        run, key = self.run, self.data_key
        assert run is not None and staged.key is not None, "staged first"
        size = next(item.size for item in self.store.list(staged.key) if item.key == staged.key)
        self.store.delete(build_record_key(self.year))
        self.store.copy(staged.key, key)
        summary = PartitionSummary.read(self.store, key)
        ledger = {name: int(value) for name, value in self.report["ledger"].items()}
        published = stored_object(self.store, key)
        if published is None:
            raise SilverError(f"silver {self.year}: {self.store.uri(key)} vanished right after publishing")
        identity = ObjectRecord.of(published, sha256_of_object(self.store, key))
        record = {"fingerprint": run.inputs.fingerprint(), "published": asdict(identity), "ledger": ledger}
        self.store.put_bytes(build_record_key(self.year), json.dumps(record, sort_keys=True).encode())
        return SilverPartition(
            year=self.year,
            key=key,
            bytes=size,
            inputs=run.inputs,
            ledger=ledger,
            summary=summary,
            changed=True,
            reason="built by the Glue job",
            notes=[json.dumps({"staged": self.store.uri(staged.key)})],
            shrink_accepted=accepted,
        )

    def discard(self, staged: Staged) -> None:
        if self.run is not None:
            discard(self.store, self.run)
