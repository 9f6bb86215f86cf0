"""The code location: every asset, check, job, sensor and schedule, with the resources of the chosen target."""

from dagster import Definitions

from boston_lake.defs.catalog import CATALOG_ASSETS, CATALOG_CHECKS
from boston_lake.defs.checks import BRONZE_CHECKS
from boston_lake.defs.gold import GOLD_ASSETS, GOLD_AUTOMATION, GOLD_JOB
from boston_lake.defs.ingest import INGEST_ASSETS
from boston_lake.defs.jobs import CRAWL_JOBS, INGEST_JOBS
from boston_lake.defs.resources import build_resources
from boston_lake.defs.schedules import SCHEDULES
from boston_lake.defs.sensors import SENSORS
from boston_lake.lake.settings import Settings


def build_definitions(settings: Settings) -> Definitions:
    return Definitions(
        assets=INGEST_ASSETS + CATALOG_ASSETS + GOLD_ASSETS,
        asset_checks=BRONZE_CHECKS + CATALOG_CHECKS,
        jobs=[*INGEST_JOBS.values(), *CRAWL_JOBS.values(), GOLD_JOB],
        schedules=SCHEDULES,
        sensors=[*SENSORS, GOLD_AUTOMATION],
        resources=build_resources(settings),
    )


defs = build_definitions(Settings.from_env())
