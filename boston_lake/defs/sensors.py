"""The crawler sensor: every bronze partition that lands gets crawled into the catalog.

It reads every bronze materialization record since its cursor (not just the newest event, which is all
`@asset_sensor` sees: dagster#32853), so years that land together, or from one single-run backfill, are
all crawled. The years of a table that landed since the last tick become one crawl run (one per unbroken
run of years, since a run covers a contiguous range). While a crawl of a table is queued or running, its
newly landed years wait (the cursor does not move past them) and the skip message says which run they
wait for. The cursor lives in the Dagster instance, so it survives restarts.
"""

import json
from collections.abc import Iterable

from dagster import (
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from boston_lake.defs.catalog import catalog_key
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


def landed_years(
    instance: DagsterInstance, table: LakeTable, after_storage_id: int | None
) -> tuple[list[int], int | None]:
    """Years with a bronze materialization after the cursor that no crawl has registered since, and the newest
    record's storage id.

    A year the catalog materialized after its bronze landed is not crawled again, so a lost or fresh cursor
    (the demo crawls in-process, then `make demo-ui` starts the daemon on the same instance) costs no crawl.
    """
    landed: dict[int, int] = {}
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
                landed[int(record.partition_key)] = record.storage_id
            newest = max(newest or 0, record.storage_id)
        if not result.has_more:
            break
        cursor = result.cursor
    crawled = instance.get_latest_storage_id_by_partition(
        catalog_key(table), DagsterEventType.ASSET_MATERIALIZATION, partitions={str(year) for year in landed}
    )
    return sorted(year for year, landed_at in landed.items() if crawled.get(str(year), 0) < landed_at), newest


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
    description="Crawls every bronze year that lands into the catalog; years landing together share one crawl.",
)
def crawl_landed_bronze(context: SensorEvaluationContext) -> SensorResult:
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    requests: list[RunRequest] = []
    waiting: list[str] = []
    anything_landed = False
    for table in TABLES:
        years, newest = landed_years(context.instance, table, cursor.get(table.name))
        anything_landed = anything_landed or newest != cursor.get(table.name)
        if newest is None:
            continue
        if not years:
            cursor[table.name] = newest  # everything up to here is crawled already
            continue
        in_flight = context.instance.get_runs(
            RunsFilter(statuses=IN_FLIGHT, tags={CRAWL_TABLE_TAG: table.name}), limit=1
        )
        if in_flight:
            run = in_flight[0]
            waiting.append(
                f"{table.name} years {years} wait for crawl run {run.run_id[:8]} ({run.status.value}) to finish"
            )
            continue
        requests += [crawl_request(table, first, last, newest) for first, last in contiguous_blocks(years)]
        cursor[table.name] = newest
    new_cursor = json.dumps(cursor, sort_keys=True)
    if requests:
        for message in waiting:
            context.log.info(message)
        return SensorResult(run_requests=requests, cursor=new_cursor)
    return SensorResult(
        cursor=new_cursor,
        skip_reason="; ".join(waiting)
        or (
            "every bronze year that landed is crawled or has a crawl requested"
            if anything_landed
            else "no bronze partition landed since the last tick"
        ),
    )


SENSORS = [crawl_landed_bronze]
