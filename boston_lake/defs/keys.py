"""The names by which one domain of the wiring refers to another's assets, jobs, pool and run tags.

The domain packages (ingest, catalog, silver, gold) never import each other: what one must name of another
lives here, so the arrows of the graph are visible in one small module.
"""

from dagster import AssetKey

from boston_lake.lake.tables import LakeTable
from boston_lake.lake.zones.silver.model import SILVER_TABLE

# Every crawl and every silver or gold registration shares this pool (limit one: dagster.yaml), so no two
# writers of the catalog run at once, even across runs.
CRAWLER_POOL = "boston_lake_crawler"
# What a single-run backfill's runs carry instead of `dagster/partition` (dagster's own tag names).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

SILVER_KEY = AssetKey(["silver", SILVER_TABLE])
SILVER_JOB = "build_silver_service_requests"


def raw_key(table: LakeTable) -> AssetKey:
    return AssetKey(["raw", table.name])


def bronze_key(table: LakeTable) -> AssetKey:
    return AssetKey(["bronze", table.name])


def catalog_key(table: LakeTable) -> AssetKey:
    return AssetKey(["catalog", table.name])


def ingest_job_name(table: LakeTable) -> str:
    return f"ingest_{table.name}"


def crawl_job_name(table: LakeTable) -> str:
    return f"crawl_{table.name}"


def partition_tags(first: int, last: int) -> dict[str, str]:
    """The tags that make a run target years `first`..`last`: one partition, or a range for a single run."""
    return {"dagster/partition": str(first)} if first == last else {RANGE_START: str(first), RANGE_END: str(last)}
