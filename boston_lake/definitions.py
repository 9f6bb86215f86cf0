"""The code location: every asset, check, job, sensor and schedule, with the resources of the chosen target."""

from collections.abc import Sequence

from dagster import AssetsDefinition, Definitions, map_asset_specs

from boston_lake.defs.catalog import (
    CATALOG_ASSETS,
    CATALOG_CHECKS,
    CATALOG_SENSORS,
    CRAWL_JOBS,
    HOUSEKEEPING_SCHEDULE,
    iceberg_housekeeping,
)
from boston_lake.defs.executor import EXECUTOR
from boston_lake.defs.gold import GOLD_ASSETS, GOLD_JOB, GOLD_SENSORS
from boston_lake.defs.ingest import BRONZE_CHECKS, INGEST_ASSETS, SCHEDULES, ingest_jobs, retry_raw_years_alone_sensor
from boston_lake.defs.resources import build_resources
from boston_lake.defs.silver import SILVER_ASSETS, SILVER_JOBS, SILVER_SENSORS
from boston_lake.lake.settings import Settings

OWNERS = ["team:data-platform"]
# Where each target keeps the zones and the catalog, as Dagster kinds the UI knows (it has no icon for Glue).
ZONE_KINDS = {"local": set(), "aws": {"s3"}}
CATALOG_KINDS = {"local": {"sqlite", "duckdb"}, "aws": {"aws", "athena"}}
# What builds silver: DuckDB in the run's process, or the Glue job's Spark.
SILVER_ENGINE_KINDS = {"local": {"duckdb"}, "aws": {"spark"}}


def _placed(assets: list[AssetsDefinition], kinds: set[str]) -> Sequence[AssetsDefinition]:
    """The assets with their owners and the kinds of the target they live on."""
    return map_asset_specs(lambda spec: spec.merge_attributes(kinds=kinds, owners=OWNERS), assets)


def build_definitions(settings: Settings) -> Definitions:
    ingest = ingest_jobs(settings.run_launcher)
    return Definitions(
        assets=[
            *_placed(INGEST_ASSETS, ZONE_KINDS[settings.target]),
            *_placed(CATALOG_ASSETS, CATALOG_KINDS[settings.target]),
            *_placed(SILVER_ASSETS, ZONE_KINDS[settings.target] | SILVER_ENGINE_KINDS[settings.target]),
            *_placed(GOLD_ASSETS, ZONE_KINDS[settings.target]),
        ],
        asset_checks=BRONZE_CHECKS + CATALOG_CHECKS,
        jobs=[*ingest, *CRAWL_JOBS.values(), *SILVER_JOBS, GOLD_JOB, iceberg_housekeeping],
        schedules=[*SCHEDULES, HOUSEKEEPING_SCHEDULE],
        sensors=[*CATALOG_SENSORS, *SILVER_SENSORS, *GOLD_SENSORS, retry_raw_years_alone_sensor(ingest)],
        resources=build_resources(settings),
        executor=EXECUTOR,
    )


defs = build_definitions(Settings.from_env())
