"""Silver on the AWS target: the Glue 5 job runs `spark_job.py` (the same SQL text as DuckDB) over the bronze
objects in S3, and this side prepares its plan and publishes what it wrote.

The job writes the year as one Parquet object under a staging prefix (`_staging/` of the silver table, which
neither crawler reads); `publish` then copies that one object to the year's key in one S3 copy, so readers see
the old year or the new one, never a part (the same guarantee as the DuckDB path and bronze), and removes the
staging prefix. Beside the year it leaves a build record (Spark cannot put the inputs' fingerprint in the
footer, as the DuckDB path does), so a year asked for again with the same bronze and transform is not rebuilt.
Launching the job is Dagster wiring (defs/silver/glue.py); nothing here imports Dagster.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boston_lake.lake import layout
from boston_lake.lake.log import Log
from boston_lake.lake.stores import ObjectStore
from boston_lake.lake.zones.silver import spark_job
from boston_lake.lake.zones.silver.duckdb_build import LEDGER_FIELDS, PartitionSummary, SilverError, SilverPartition
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


def _published(store: ObjectStore, key: str) -> dict[str, Any] | None:
    """What identifies the object now at `key` (None: there is none): a copy over it changes its time, a
    different year its size."""
    for item in store.list(key):
        if item.key == key:
            return {"key": key, "size": item.size, "last_modified": item.last_modified.isoformat()}
    return None


def current(store: ObjectStore, inputs: SilverInputs) -> SilverPartition | None:
    """The published year, if the Glue job built it from these very bronze objects by this transform: its build
    record names the inputs' fingerprint and the object it published, and that object is still there."""
    key, record_key = layout.data_key(SILVER_ZONE, SILVER_TABLE, inputs.year), build_record_key(inputs.year)
    if not store.exists(record_key):
        return None
    record = json.loads(store.get_bytes(record_key))
    published = _published(store, key)
    if published is None or record.get("fingerprint") != inputs.fingerprint() or record.get("published") != published:
        return None
    return SilverPartition(
        year=inputs.year,
        key=key,
        bytes=int(record["published"]["size"]),
        inputs=inputs,
        ledger={name: int(value) for name, value in record["ledger"].items()},
        summary=PartitionSummary.read(store, key),
        changed=False,
        reason="already built by the Glue job from these bronze files by this transform version",
    )


def publish(store: ObjectStore, run: GlueRun, report: dict[str, Any], log: Log) -> SilverPartition:
    """Publish the one object the job staged as the year's object, whole, describe it, and record the build.

    The old build record goes first: a publish cut short leaves none, and the year is built again."""
    year, key = run.year, layout.data_key(SILVER_ZONE, SILVER_TABLE, run.year)
    staged = [item for item in store.list(run.staging_prefix) if item.key.endswith(".parquet")]
    if len(staged) != 1:
        raise SilverError(
            f"silver {year}: the Glue job staged {len(staged)} Parquet objects under "
            f"{store.uri(run.staging_prefix)}, not one"
        )
    store.delete(build_record_key(year))
    store.copy(staged[0].key, key)
    discard(store, run)
    for stray in store.list(layout.partition_prefix(SILVER_ZONE, SILVER_TABLE, year)):
        if stray.key != key and not layout.is_bookkeeping(stray.key):
            log.warning(f"silver {year}: removing stray data file {stray.key} from the partition")
            store.delete(stray.key)
    summary = PartitionSummary.read(store, key)
    if summary.rows != int(report["rows"]):
        raise SilverError(f"silver {year}: the Glue job reported {report['rows']} rows, {key} holds {summary.rows}")
    ledger = {name: int(value) for name, value in report["ledger"].items()}
    record = {"fingerprint": run.inputs.fingerprint(), "published": _published(store, key), "ledger": ledger}
    store.put_bytes(build_record_key(year), json.dumps(record, sort_keys=True).encode())
    return SilverPartition(
        year=year,
        key=key,
        bytes=staged[0].size,
        inputs=run.inputs,
        ledger=ledger,
        summary=summary,
        changed=True,
        reason="built by the Glue job",
        notes=[json.dumps({"staged": store.uri(staged[0].key)})],
    )
