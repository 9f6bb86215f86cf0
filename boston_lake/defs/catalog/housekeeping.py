"""The daily housekeeping of the silver and gold Iceberg tables: snapshot expiry and the removal of files no
snapshot reads (lake/zones/housekeeping.py), as a job and the schedule that runs it."""

from dagster import DefaultScheduleStatus, OpExecutionContext, ScheduleDefinition, job, op

from boston_lake.defs.partitions import TIMEZONE
from boston_lake.defs.resources import LakeStorageResource
from boston_lake.lake.zones.housekeeping import keep_tables

# Boston time, after the morning refresh (06:00) and the silver and gold runs it sets off.
HOUSEKEEPING_CRON = "0 9 * * *"


@op(description="Expire snapshots beyond BOSTON_LAKE_SNAPSHOT_RETENTION_DAYS and remove the files no snapshot reads.")
def expire_snapshots_and_unread_files(context: OpExecutionContext, storage: LakeStorageResource) -> None:
    keep_tables(storage.iceberg(), storage.snapshot_retention_days(), context.log)


@job(description="Housekeeping of the silver and gold Iceberg tables (on AWS, Glue's table optimizers can do it).")
def iceberg_housekeeping() -> None:
    expire_snapshots_and_unread_files()


HOUSEKEEPING_SCHEDULE = ScheduleDefinition(
    name="iceberg_housekeeping_daily",
    job=iceberg_housekeeping,
    cron_schedule=HOUSEKEEPING_CRON,
    execution_timezone=TIMEZONE,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day: snapshot expiry and unread files of the silver and gold Iceberg tables.",
)
