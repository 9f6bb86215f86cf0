"""The crawler sensor: every bronze partition that lands changed gets crawled into the catalog.

A bronze materialization that changed nothing (its `changed` metadata is false: the raw file and converter
were the same, so the Parquet object was not rewritten) requests no crawl: a daily refresh that finds
nothing new costs no crawl, which in `glue` mode is a billed crawler run.

Years that land together, or from one single-run backfill, are all crawled (automation.py reads every
record since the cursor). The years of a table that landed since the last tick become one crawl run (one per unbroken
run of years, since a run covers a contiguous range). While a crawl of a table is queued or running, its
newly landed years wait (the cursor does not move past them) and the skip message says which run they
wait for. The cursor lives in the Dagster instance, so it survives restarts.

A crawl run that ends FAILURE or CANCELED is not forgotten because the cursor moved past its years: its years
are requested again, at most MAX_ATTEMPTS runs per landing (automation.retries), and the tick says which years,
after which run, and when it gives up.
"""

import json

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from boston_lake.defs.automation import IN_FLIGHT, contiguous_blocks, landed_years, request_tags, retries
from boston_lake.defs.catalog.jobs import CRAWL_JOBS
from boston_lake.defs.keys import catalog_key, crawl_job_name
from boston_lake.lake.tables import TABLES, LakeTable

CRAWL_TABLE_TAG = "boston_lake/crawl_table"
SENSOR_NAME = "crawl_landed_bronze"


def not_yet_crawled(instance: DagsterInstance, table: LakeTable, changed: dict[int, int]) -> list[int]:
    """The changed years no crawl has registered since they landed.

    A year the catalog materialized after its bronze landed is not crawled again, so a lost or fresh cursor
    (the demo crawls in-process, then `make demo-ui` starts the daemon on the same instance) costs no crawl.
    """
    crawled = instance.get_latest_storage_id_by_partition(
        catalog_key(table), DagsterEventType.ASSET_MATERIALIZATION, partitions={str(year) for year in changed}
    )
    return sorted(year for year, landed_at in changed.items() if crawled.get(str(year), 0) < landed_at)


def crawl_request(table: LakeTable, first: int, last: int, landing: int, attempt: int = 1) -> RunRequest:
    """A crawl of `first`..`last` following the landing `landing` (the newest storage id it saw)."""
    again = f":attempt{attempt}" if attempt > 1 else ""
    return RunRequest(
        run_key=f"{table.name}:{landing}:{first}-{last}{again}",
        job_name=crawl_job_name(table),
        tags={**request_tags(SENSOR_NAME, first, last, landing, attempt), CRAWL_TABLE_TAG: table.name},
    )


@sensor(
    name=SENSOR_NAME,
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
        years = not_yet_crawled(context.instance, table, landed.changed) if newest is not None else []
        again = retries(
            context.instance,
            SENSOR_NAME,
            [catalog_key(table)],
            scope={CRAWL_TABLE_TAG: table.name},
            requested_now=years,
            label=f"{table.name} ",
        )
        if not years and not again.requests:
            notes += again.notes  # years given up, if any
            if newest is not None:
                cursor[table.name] = newest  # everything up to here is crawled already
            continue
        in_flight = context.instance.get_runs(
            RunsFilter(statuses=IN_FLIGHT, tags={CRAWL_TABLE_TAG: table.name}), limit=1
        )
        if in_flight:
            run = in_flight[0]
            waiting = sorted({*years, *(year for r in again.requests for year in range(r.first, r.last + 1))})
            notes.append(
                f"{table.name} years {waiting} wait for crawl run {run.run_id[:8]} ({run.status.value}) to finish"
            )
            continue
        notes += again.notes
        if newest is not None:
            requests += [crawl_request(table, first, last, newest) for first, last in contiguous_blocks(years)]
            cursor[table.name] = newest
        requests += [crawl_request(table, r.first, r.last, r.landing, r.attempt) for r in again.requests]
    new_cursor = json.dumps(cursor, sort_keys=True)
    if requests:
        for message in notes:
            context.log.info(message)
        return SensorResult(run_requests=requests, cursor=new_cursor)
    skipped = "; ".join(notes) or (
        "every bronze year that landed is crawled or has a crawl requested"
        if anything_landed
        else "no bronze partition landed since the last tick"
    )
    context.log.info(skipped)  # the tick's "View logs" shows it, not only its skip dialog
    return SensorResult(cursor=new_cursor, skip_reason=skipped)


CATALOG_SENSORS = [crawl_landed_bronze]
