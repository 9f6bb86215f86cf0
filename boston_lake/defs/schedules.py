"""The daily refresh: the running year of each table, raw then bronze, every morning in Boston.

One schedule per table, because a schedule targets one job and a job holds one partitions definition
(the tables' years start in 2011 and 2025). Each can be paused on its own.
"""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleDefinition, ScheduleEvaluationContext, schedule

from boston_lake.defs.jobs import INGEST_JOBS
from boston_lake.defs.partitions import TIMEZONE
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
            f"Refresh the running year of {table.name} daily; a no-op download when the portal has nothing new."
        ),
    )
    def refresh(context: ScheduleEvaluationContext) -> RunRequest:
        scheduled = context.scheduled_execution_time
        return RunRequest(
            run_key=f"{table.name}:{scheduled.date().isoformat()}",
            partition_key=str(scheduled.year),
            tags={"boston_lake/trigger": "daily_refresh"},
        )

    return refresh


SCHEDULES = [build_refresh_schedule(table) for table in TABLES]
