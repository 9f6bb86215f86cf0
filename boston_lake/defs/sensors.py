"""The crawler sensor: every bronze partition that lands changed gets crawled into the catalog.

A bronze materialization that changed nothing (its `changed` metadata is false: the raw file and converter
were the same, so the Parquet object was not rewritten) requests no crawl: a daily refresh that finds
nothing new costs no crawl, which in `glue` mode is a billed crawler run.

It reads every bronze materialization record since its cursor (not just the newest event, which is all
`@asset_sensor` sees: dagster#32853), so years that land together, or from one single-run backfill, are
all crawled. The years of a table that landed since the last tick become one crawl run (one per unbroken
run of years, since a run covers a contiguous range). While a crawl of a table is queued or running, its
newly landed years wait (the cursor does not move past them) and the skip message says which run they
wait for. The cursor lives in the Dagster instance, so it survives restarts.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass

from dagster import (
    AssetCheckEvaluation,
    AssetRecordsFilter,
    BoolMetadataValue,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    EventLogRecord,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from boston_lake.defs.catalog import catalog_key
from boston_lake.defs.checks import failing_years_of
from boston_lake.defs.ingest import bronze_key
from boston_lake.defs.jobs import CRAWL_JOBS, crawl_job_name
from boston_lake.lake.tables import TABLES, LakeTable

CRAWL_TABLE_TAG = "boston_lake/crawl_table"
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
PAGE = 1000


@dataclass(frozen=True)
class Landed:
    """The bronze materializations of one table after a cursor."""

    changed: dict[int, int]  # year -> storage id of its newest materialization that rewrote the bronze object
    unchanged: list[int]  # years materialized only without a change (the same raw file: nothing rewritten)
    blocked: dict[int, str]  # changed years whose run failed a blocking check on them -> which check, which run
    newest_storage_id: int | None  # of any record: the cursor moves past unchanged ones too


def rewrote_bronze(record: EventLogRecord) -> bool:
    """False only when the materialization says it changed nothing; a record without the flag counts as changed."""
    materialization = record.asset_materialization
    flag = materialization.metadata.get("changed") if materialization else None
    return not isinstance(flag, BoolMetadataValue) or flag.value is not False


def landed_years(instance: DagsterInstance, table: LakeTable, after_storage_id: int | None) -> Landed:
    """The bronze years materialized after the cursor. A changed year that failed a blocking check in the run
    that built it is `blocked`, not `changed`: its data is stored, but nothing downstream may take it up."""
    changed: dict[int, EventLogRecord] = {}
    unchanged: set[int] = set()
    newest = after_storage_id
    cursor = None
    while True:
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=bronze_key(table), after_storage_id=after_storage_id),
            limit=PAGE,
            cursor=cursor,
            ascending=True,
        )
        for record in result.records:
            if record.partition_key is not None:
                year = int(record.partition_key)
                if rewrote_bronze(record):
                    changed[year] = record
                else:
                    unchanged.add(year)
            newest = max(newest or 0, record.storage_id)
        if not result.has_more:
            break
        cursor = result.cursor
    blocked = failed_blocking_checks(instance, table, changed)
    return Landed(
        {year: record.storage_id for year, record in changed.items() if year not in blocked},
        sorted(unchanged - changed.keys()),
        blocked,
        newest,
    )


def failed_blocking_checks(
    instance: DagsterInstance, table: LakeTable, changed: dict[int, EventLogRecord]
) -> dict[int, str]:
    """The years that a blocking bronze check failed in the run that built them, with the check and the run."""
    failed: dict[int, str] = {}
    for run_id in {record.run_id for record in changed.values()}:
        evaluations = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
        for entry in evaluations:
            event = entry.event_log_entry.dagster_event
            evaluation = event.event_specific_data if event else None
            if not isinstance(evaluation, AssetCheckEvaluation) or evaluation.asset_key != bronze_key(table):
                continue
            if evaluation.passed or not evaluation.blocking:
                continue
            for year in failing_years_of(evaluation.metadata):
                if year in changed and changed[year].run_id == run_id:
                    failed[year] = f"blocking check {evaluation.check_name} failed in run {run_id[:8]}"
    return failed


def not_yet_crawled(instance: DagsterInstance, table: LakeTable, changed: dict[int, int]) -> list[int]:
    """The changed years no crawl has registered since they landed.

    A year the catalog materialized after its bronze landed is not crawled again, so a lost or fresh cursor
    (the demo crawls in-process, then `make demo-ui` starts the daemon on the same instance) costs no crawl.
    """
    crawled = instance.get_latest_storage_id_by_partition(
        catalog_key(table), DagsterEventType.ASSET_MATERIALIZATION, partitions={str(year) for year in changed}
    )
    return sorted(year for year, landed_at in changed.items() if crawled.get(str(year), 0) < landed_at)


def contiguous_blocks(years: Iterable[int]) -> list[tuple[int, int]]:
    blocks: list[list[int]] = []
    for year in sorted(set(years)):
        if blocks and year == blocks[-1][1] + 1:
            blocks[-1][1] = year
        else:
            blocks.append([year, year])
    return [(first, last) for first, last in blocks]


def crawl_request(table: LakeTable, first: int, last: int, newest_storage_id: int) -> RunRequest:
    partition = {"dagster/partition": str(first)} if first == last else {RANGE_START: str(first), RANGE_END: str(last)}
    return RunRequest(
        run_key=f"{table.name}:{newest_storage_id}:{first}-{last}",
        job_name=crawl_job_name(table),
        tags={**partition, CRAWL_TABLE_TAG: table.name},
    )


@sensor(
    name="crawl_landed_bronze",
    jobs=list(CRAWL_JOBS.values()),
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Crawls every bronze year that lands changed into the catalog; years landing together share one crawl, "
        "and a refresh that changed nothing requests none."
    ),
)
def crawl_landed_bronze(context: SensorEvaluationContext) -> SensorResult:
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    requests: list[RunRequest] = []
    notes: list[str] = []
    anything_landed = False
    for table in TABLES:
        landed = landed_years(context.instance, table, cursor.get(table.name))
        newest = landed.newest_storage_id
        anything_landed = anything_landed or newest != cursor.get(table.name)
        if landed.unchanged:
            notes.append(f"{table.name} years {landed.unchanged} were refreshed unchanged: nothing to crawl")
        notes += [f"{table.name} {year} not crawled: {why}" for year, why in sorted(landed.blocked.items())]
        if newest is None:
            continue
        years = not_yet_crawled(context.instance, table, landed.changed)
        if not years:
            cursor[table.name] = newest  # everything up to here is crawled already
            continue
        in_flight = context.instance.get_runs(
            RunsFilter(statuses=IN_FLIGHT, tags={CRAWL_TABLE_TAG: table.name}), limit=1
        )
        if in_flight:
            run = in_flight[0]
            notes.append(
                f"{table.name} years {years} wait for crawl run {run.run_id[:8]} ({run.status.value}) to finish"
            )
            continue
        requests += [crawl_request(table, first, last, newest) for first, last in contiguous_blocks(years)]
        cursor[table.name] = newest
    new_cursor = json.dumps(cursor, sort_keys=True)
    if requests:
        for message in notes:
            context.log.info(message)
        return SensorResult(run_requests=requests, cursor=new_cursor)
    return SensorResult(
        cursor=new_cursor,
        skip_reason="; ".join(notes)
        or (
            "every bronze year that landed is crawled or has a crawl requested"
            if anything_landed
            else "no bronze partition landed since the last tick"
        ),
    )


SENSORS = [crawl_landed_bronze]
