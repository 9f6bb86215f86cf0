"""The daily refresh: every year of each table whose source can still change, raw then bronze, each morning.

- legacy: the running year and the previous one. A case opened in December and closed in January changes
  the previous year's file, and the city republishes that file for some weeks into the new year. Of those
  two, the years the portal does not publish (yet) are left out, and a morning with neither is skipped with
  the reason, instead of a run bound to fail.
- NEW SYSTEM: every year from 2025. One DataStore fetch reads every record anyway, and any of them can
  still change (a case closes, a late one is entered), so every year the records touch is refreshed; a
  year whose records did not change is not rewritten, and a year that changed nothing requests no crawl.

One run per table and morning, over its years (the assets run a range as one run). One schedule per table,
because a schedule targets one job and a job holds one partitions definition (the tables' years start in
2011 and 2025). Each can be paused on its own.
"""

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from boston_lake.defs.keys import RANGE_END, RANGE_START, ingest_job_name
from boston_lake.defs.partitions import TIMEZONE
from boston_lake.defs.resources import CkanPortalResource
from boston_lake.lake.tables import TABLES, LakeTable
from boston_lake.lake.zones.raw import offered_years

REFRESH_CRON = "0 6 * * *"
LEGACY_YEARS_STILL_CHANGING = 2  # the running year and the previous one


def refresh_years(table: LakeTable, running_year: int) -> list[int]:
    """Every year that the morning's refresh of `table` covers, before asking the portal."""
    if table.split_by_year:
        return list(range(table.first_year, running_year + 1))
    return list(range(max(table.first_year, running_year - LEGACY_YEARS_STILL_CHANGING + 1), running_year + 1))


def build_refresh_schedule(table: LakeTable) -> ScheduleDefinition:
    what = "every year from 2025 (one DataStore fetch)" if table.split_by_year else "the running and previous year"

    @schedule(
        name=f"refresh_{table.name}",
        job_name=ingest_job_name(table),
        cron_schedule=REFRESH_CRON,
        execution_timezone=TIMEZONE,
        default_status=DefaultScheduleStatus.RUNNING,
        description=(
            f"Refresh {what} of {table.name} daily; a year with nothing new writes nothing, "
            "a year the portal does not publish is left out."
        ),
    )
    def refresh(context: ScheduleEvaluationContext, portal: CkanPortalResource) -> RunRequest | SkipReason:
        scheduled = context.scheduled_execution_time
        years = refresh_years(table, scheduled.year)
        if not table.split_by_year:
            offered = offered_years(portal.client(context.log).resources(), table)
            published = [year for year in years if year in offered]
            if not published:
                return SkipReason(
                    f"the portal publishes no {table.name} file for {' or '.join(map(str, years))} "
                    f"(it offers {', '.join(map(str, offered)) or 'none'}); nothing to refresh"
                )
            years = published
        return RunRequest(
            run_key=f"{table.name}:{scheduled.date().isoformat()}",
            tags={RANGE_START: str(years[0]), RANGE_END: str(years[-1]), "boston_lake/trigger": "daily_refresh"},
        )

    return refresh


SCHEDULES = [build_refresh_schedule(table) for table in TABLES]
