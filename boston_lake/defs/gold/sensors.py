"""Gold kept running: a gold run that ended FAILURE or CANCELED is requested again, at most MAX_ATTEMPTS runs per
silver landing (automation.retries), and the tick says which years, after which run, and when it gives up.

Declarative automation requests a gold year once per silver update and then forgets it, so a gold run that fails
would leave the year stale until silver changes again. Dagster's own run retries do not fit: they retry failures
only, not cancellations, and never a run of a backfill that has ended, which is how automation launches gold for
more than one year at once. So this sensor follows gold as the crawl and silver sensors follow theirs: from the
runs themselves, tagged by who requested them.
"""

from dagster import (
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    RunRecord,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from boston_lake.defs.automation import request_tags, retries
from boston_lake.defs.gold.assets import GOLD_AUTOMATION, GOLD_JOB, GOLD_KEYS
from boston_lake.defs.keys import SILVER_KEY

RETRY_SENSOR_NAME = "retry_undone_gold"


def silver_landing(instance: DagsterInstance, run: RunRecord, year: int) -> int | None:
    """The silver materialization a gold run launched by automation followed: the year's newest one before the
    run was created (None: none, so there is nothing to follow)."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=SILVER_KEY, asset_partitions=[str(year)], before_timestamp=run.create_timestamp.timestamp()
        ),
        limit=1,
    ).records
    return records[0].storage_id if records else None


@sensor(
    name=RETRY_SENSOR_NAME,
    jobs=[GOLD_JOB],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests again the gold years whose run failed or was canceled, up to 3 runs per silver update.",
)
def retry_undone_gold(context: SensorEvaluationContext) -> list[RunRequest] | SkipReason:
    instance = context.instance
    again = retries(
        instance,
        [GOLD_AUTOMATION.name, RETRY_SENSOR_NAME],
        GOLD_KEYS,
        label="gold ",
        landing_of=lambda run, year: silver_landing(instance, run, year),
    )
    if not again.requests:
        skipped = "; ".join(again.notes) or "no gold run ended failed or canceled without being built since"
        context.log.info(skipped)  # the tick's "View logs" shows it, not only its skip dialog
        return SkipReason(skipped)
    for note in again.notes:
        context.log.info(note)
    return [
        RunRequest(
            run_key=f"gold:{r.landing}:{r.first}-{r.last}:attempt{r.attempt}",
            job_name=GOLD_JOB.name,
            tags=request_tags(RETRY_SENSOR_NAME, r.first, r.last, r.landing, r.attempt),
        )
        for r in again.requests
    ]
