"""A raw year that failed beside a year the portal does not publish is requested again, in a run of its own.

A failed run marks every year it did not store Failed in the partition view, and only a materialization clears
that: had a run of 2012-2015 failed because 2012 did, 2014, which the portal does not publish, would show Failed
for good. So such a run stores what it can, observes the unpublished years, observes each failed year (metadata
`failed_beside_absent`, and the reason) and succeeds; this sensor then requests the ingest job for exactly the
failed years, a run that fails, and shows them Failed, if they fail again.
"""

import json
from typing import Any

from dagster import (
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from boston_lake.defs.automation import PAGE, REQUESTED_BY, contiguous_blocks
from boston_lake.defs.keys import ingest_job_name, partition_tags, raw_key
from boston_lake.defs.metadata import FAILED_BESIDE_ABSENT
from boston_lake.lake.tables import TABLES, LakeTable

SENSOR_NAME = "retry_raw_years_alone"


def failed_beside_absent(instance: DagsterInstance, table: LakeTable, after: int | None) -> tuple[dict[int, int], int]:
    """The years of `table` observed failed beside an unpublished year after storage id `after` (year -> its
    observation's storage id), and the newest storage id read (`after` when there is none)."""
    failed: dict[int, int] = {}
    newest = after or 0
    while True:
        result = instance.fetch_observations(
            AssetRecordsFilter(asset_key=raw_key(table), after_storage_id=newest or None), limit=PAGE, ascending=True
        )
        for record in result.records:
            observation = record.asset_observation
            if observation and observation.partition and FAILED_BESIDE_ABSENT in observation.metadata:
                failed[int(observation.partition)] = record.storage_id
            newest = record.storage_id
        if not result.has_more:
            return failed, newest


def retry_raw_years_alone_sensor(jobs: list[Any]) -> SensorDefinition:  # Dagster exports no name for asset jobs
    @sensor(
        name=SENSOR_NAME,
        jobs=jobs,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Requests again, in a run of their own, the raw years that failed in a run beside a year the "
        "portal does not publish (which a failed run would have marked Failed).",
    )
    def retry_raw_years_alone(context: SensorEvaluationContext) -> SensorResult:
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        requests = []
        for table in TABLES:
            failed, cursor[table.name] = failed_beside_absent(context.instance, table, cursor.get(table.name))
            for first, last in contiguous_blocks(failed):
                landing = max(failed[year] for year in range(first, last + 1))
                requests.append(
                    RunRequest(
                        run_key=f"alone:{table.name}:{landing}:{first}-{last}",
                        job_name=ingest_job_name(table),
                        tags={**partition_tags(first, last), REQUESTED_BY: SENSOR_NAME},
                    )
                )
                context.log.info(f"{table.name} {first}-{last} failed beside an unpublished year: requested alone")
        new_cursor = json.dumps(cursor, sort_keys=True)
        if requests:
            return SensorResult(run_requests=requests, cursor=new_cursor)
        skipped = "no raw year failed beside an unpublished year since the last tick"
        context.log.info(skipped)  # the tick's "View logs" shows it, not only its skip dialog
        return SensorResult(cursor=new_cursor, skip_reason=skipped)

    return retry_raw_years_alone
