"""Ingest: raw and bronze assets per table, bronze's checks, the ingest jobs, the daily refresh schedule, and the
sensor that retries alone a year that failed beside an unpublished one."""

from boston_lake.defs.ingest.assets import INGEST_ASSETS
from boston_lake.defs.ingest.checks import BRONZE_CHECKS
from boston_lake.defs.ingest.jobs import ingest_jobs
from boston_lake.defs.ingest.schedules import SCHEDULES
from boston_lake.defs.ingest.sensors import retry_raw_years_alone_sensor

__all__ = ["BRONZE_CHECKS", "INGEST_ASSETS", "ingest_jobs", "retry_raw_years_alone_sensor", "SCHEDULES"]
