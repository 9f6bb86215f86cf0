"""The crawl jobs, one per table: what the crawl sensor and a person in the UI launch for a table's years."""

from dagster import define_asset_job

from boston_lake.defs.keys import catalog_key, crawl_job_name
from boston_lake.lake.tables import TABLES

CRAWL_JOBS = {
    table.name: define_asset_job(
        name=crawl_job_name(table),
        selection=[catalog_key(table)],
        description=f"Crawl bronze/{table.name} into the catalog and verify that the run's years are registered.",
    )
    for table in TABLES
}
