"""Silver kept current: the job that builds silver years, and the sensor that requests the years a bronze change
reaches (year Y reads bronze Y-1..Y+1). A silver run it requested that ends FAILURE or CANCELED is requested
again, at most MAX_ATTEMPTS runs per landing (automation.retries); the tick says which years, after which run,
and when it gives up."""

import json

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    sensor,
)

from boston_lake.defs.automation import contiguous_blocks, landed_years, request_tags, retries
from boston_lake.defs.keys import SILVER_JOB, SILVER_KEY
from boston_lake.defs.partitions import SILVER_PARTITIONS
from boston_lake.lake.tables import TABLES
from boston_lake.lake.zones.silver.inputs import NEIGHBOURS

SILVER_BUILD_JOB = define_asset_job(
    name=SILVER_JOB,
    selection=[SILVER_KEY],
    description="Build silver years from bronze, register them in boston311.service_requests, and check them.",
)


# -- kept current --------------------------------------------------------------------------------------------

SENSOR_NAME = "rebuild_silver_on_bronze_change"


def silver_years_to_rebuild(instance: DagsterInstance, landed_at: dict[int, int]) -> dict[int, int]:
    """The silver years whose window holds a bronze year that landed changed (`landed_at`: year -> the newest
    landing's storage id) and that no silver build has followed since, each with its newest landing.

    A silver year materialized (or observed empty) after every landing it reads is not rebuilt again, so a lost or
    fresh cursor (the demo builds silver in-process, then `make demo-ui` starts the daemon on the same instance)
    costs nothing.
    """
    partition_years = {int(key) for key in SILVER_PARTITIONS.get_partition_keys()}
    newest_input: dict[int, int] = {}
    for bronze_year, storage_id in landed_at.items():
        for offset in NEIGHBOURS:
            silver_year = bronze_year - offset
            if silver_year in partition_years:
                newest_input[silver_year] = max(newest_input.get(silver_year, 0), storage_id)
    # A build that found no case in the year observes it instead of materializing it: it followed the landing too.
    partitions = {str(year) for year in newest_input}
    built = {
        kind: instance.get_latest_storage_id_by_partition(SILVER_KEY, kind, partitions=partitions)
        for kind in (DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_OBSERVATION)
    }
    return {
        year: landed
        for year, landed in sorted(newest_input.items())
        if max(by_year.get(str(year), 0) for by_year in built.values()) < landed
    }


def silver_request(first: int, last: int, landing: int, run_key: str, attempt: int = 1) -> RunRequest:
    return RunRequest(
        run_key=run_key, job_name=SILVER_JOB, tags=request_tags(SENSOR_NAME, first, last, landing, attempt)
    )


@sensor(
    name=SENSOR_NAME,
    jobs=[SILVER_BUILD_JOB],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="When a bronze year is rebuilt, rebuilds and re-registers the silver years that read it.",
)
def rebuild_silver_on_bronze_change(context: SensorEvaluationContext) -> SensorResult:
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    landed_at: dict[int, int] = {}
    for table in TABLES:
        landed = landed_years(context.instance, table, cursor.get(table.name))
        for year, storage_id in landed.changed.items():
            landed_at[year] = max(landed_at.get(year, 0), storage_id)
        if landed.newest_storage_id is not None:
            cursor[table.name] = landed.newest_storage_id
    affected = silver_years_to_rebuild(context.instance, landed_at)
    again = retries(context.instance, SENSOR_NAME, [SILVER_KEY], requested_now=affected, label="silver ")
    stamp = "-".join(str(cursor[name]) for name in sorted(cursor))
    requests = [
        silver_request(
            first, last, max(affected[year] for year in range(first, last + 1)), f"silver:{stamp}:{first}-{last}"
        )
        for first, last in contiguous_blocks(affected)
    ]
    requests += [
        silver_request(
            r.first, r.last, r.landing, f"silver:{r.landing}:{r.first}-{r.last}:attempt{r.attempt}", r.attempt
        )
        for r in again.requests
    ]
    new_cursor = json.dumps(cursor, sort_keys=True)
    if requests:
        if affected:
            context.log.info(f"bronze years {sorted(landed_at)} changed: rebuilding silver {sorted(affected)}")
        for note in again.notes:
            context.log.info(note)
        return SensorResult(run_requests=requests, cursor=new_cursor)
    skipped = "; ".join(
        [
            *again.notes,
            "every silver year reading a bronze year that changed is built or requested"
            if landed_at
            else "no bronze year changed since the last tick",
        ]
    )
    context.log.info(skipped)  # the tick's "View logs" shows it, not only its skip dialog
    return SensorResult(cursor=new_cursor, skip_reason=skipped)


SILVER_JOBS = [SILVER_BUILD_JOB]
SILVER_SENSORS = [rebuild_silver_on_bronze_change]
