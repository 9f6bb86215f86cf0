"""The catalog: a table per bronze table kept current by the crawler, its checks, crawl jobs and the crawl sensor;
and the daily housekeeping of the silver and gold Iceberg tables."""

from boston_lake.defs.catalog.assets import CATALOG_ASSETS, CATALOG_CHECKS
from boston_lake.defs.catalog.housekeeping import HOUSEKEEPING_SCHEDULE, iceberg_housekeeping
from boston_lake.defs.catalog.jobs import CRAWL_JOBS
from boston_lake.defs.catalog.sensors import CATALOG_SENSORS

__all__ = [
    "CATALOG_ASSETS",
    "CATALOG_CHECKS",
    "CATALOG_SENSORS",
    "CRAWL_JOBS",
    "HOUSEKEEPING_SCHEDULE",
    "iceberg_housekeeping",
]
