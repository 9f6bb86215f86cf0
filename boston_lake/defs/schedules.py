"""The daily refresh: the running year of each table, raw then bronze, every morning in Boston.

One schedule per table, because a schedule targets one job and a job holds one partitions definition
(the tables' years start in 2011 and 2025). Each can be paused on its own. A yearly table's tick asks the
portal first: a year it does not (yet) publish is skipped with the reason, instead of a run bound to fail.
"""

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from boston_lake.defs.jobs import INGEST_JOBS
from boston_lake.defs.partitions import TIMEZONE
from boston_lake.defs.resources import CkanPortalResource
from boston_lake.lake.raw import offered_years
from boston_lake.lake.tables import TABLES, LakeTable

REFRESH_CRON = "0 6 * * *"


def build_refresh_schedule(table: LakeTable) -> ScheduleDefinition:
    @schedule(
        name=f"refresh_{table.name}_current_year",
        job=INGEST_JOBS[table.name],
        cron_schedule=REFRESH_CRON,
        execution_timezone=TIMEZONE,
        default_status=DefaultScheduleStatus.RUNNING,
        description=(
            f"Refresh the running year of {table.name} daily; a no-op download when the portal has nothing new, "
            "skipped when the portal does not publish that year."
        ),
    )
    def refresh(context: ScheduleEvaluationContext, portal: CkanPortalResource) -> RunRequest | SkipReason:
        scheduled = context.scheduled_execution_time
        if not table.split_by_year:
            offered = offered_years(portal.client(context.log).resources(), table)
            if scheduled.year not in offered:
                return SkipReason(
                    f"the portal publishes no {table.name} file for {scheduled.year} "
                    f"(it offers {', '.join(map(str, offered)) or 'none'}); nothing to refresh"
                )
        return RunRequest(
            run_key=f"{table.name}:{scheduled.date().isoformat()}",
            partition_key=str(scheduled.year),
            tags={"boston_lake/trigger": "daily_refresh"},
        )

    return refresh


SCHEDULES = [build_refresh_schedule(table) for table in TABLES]
