"""Silver kept current: the job that builds silver years, and the sensor that requests the years a bronze change
reaches (year Y reads bronze Y-1..Y+1)."""

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

from boston_lake.defs.automation import contiguous_blocks, landed_years
from boston_lake.defs.keys import SILVER_JOB, SILVER_KEY, partition_tags
from boston_lake.defs.partitions import SILVER_PARTITIONS
from boston_lake.lake.tables import TABLES
from boston_lake.lake.zones.silver.inputs import NEIGHBOURS

SILVER_BUILD_JOB = define_asset_job(
    name=SILVER_JOB,
    selection=[SILVER_KEY],
    description="Build silver years from bronze, register them in boston311.service_requests, and check them.",
)


# -- kept current --------------------------------------------------------------------------------------------


def silver_years_to_rebuild(instance: DagsterInstance, landed_at: dict[int, int]) -> list[int]:
    """The silver years whose window holds a bronze year that landed changed (`landed_at`: year -> the newest
    landing's storage id) and that no silver build has followed since.

    A silver year materialized after every landing it reads is not rebuilt again, so a lost or fresh cursor
    (the demo builds silver in-process, then `make demo-ui` starts the daemon on the same instance) costs nothing.
    """
    partition_years = {int(key) for key in SILVER_PARTITIONS.get_partition_keys()}
    newest_input: dict[int, int] = {}
    for bronze_year, storage_id in landed_at.items():
        for offset in NEIGHBOURS:
            silver_year = bronze_year - offset
            if silver_year in partition_years:
                newest_input[silver_year] = max(newest_input.get(silver_year, 0), storage_id)
    built = instance.get_latest_storage_id_by_partition(
        SILVER_KEY, DagsterEventType.ASSET_MATERIALIZATION, partitions={str(year) for year in newest_input}
    )
    return sorted(year for year, landed in newest_input.items() if built.get(str(year), 0) < landed)


@sensor(
    name="rebuild_silver_on_bronze_change",
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
    stamp = "-".join(str(cursor[name]) for name in sorted(cursor))
    requests = [
        RunRequest(
            run_key=f"silver:{stamp}:{first}-{last}",
            job_name=SILVER_JOB,
            tags=partition_tags(first, last),
        )
        for first, last in contiguous_blocks(affected)
    ]
    new_cursor = json.dumps(cursor, sort_keys=True)
    if requests:
        context.log.info(f"bronze years {sorted(landed_at)} changed: rebuilding silver {affected}")
        return SensorResult(run_requests=requests, cursor=new_cursor)
    return SensorResult(
        cursor=new_cursor,
        skip_reason="every silver year reading a bronze year that changed is built or requested"
        if landed_at
        else "no bronze year changed since the last tick",
    )


SILVER_JOBS = [SILVER_BUILD_JOB]
SILVER_SENSORS = [rebuild_silver_on_bronze_change]
