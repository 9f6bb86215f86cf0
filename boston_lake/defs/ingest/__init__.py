"""Ingest: raw and bronze assets per table, bronze's checks, the ingest jobs and the daily refresh schedule."""

from boston_lake.defs.ingest.assets import INGEST_ASSETS
from boston_lake.defs.ingest.checks import BRONZE_CHECKS
from boston_lake.defs.ingest.jobs import ingest_jobs
from boston_lake.defs.ingest.schedules import SCHEDULES

__all__ = ["BRONZE_CHECKS", "INGEST_ASSETS", "ingest_jobs", "SCHEDULES"]
