"""Jobs: what schedules, sensors, the demo and a person in the UI launch for one table's years."""

from dagster import define_asset_job

from boston_lake.defs.catalog import catalog_key
from boston_lake.defs.ingest import bronze_key, raw_key
from boston_lake.lake.tables import TABLES, LakeTable

# The size of an ingest run's container where runs get their own (EcsRunLauncher reads these tags; other
# launchers ignore them): the bronze benchmark's 2 cores, and 4 GB, Fargate's least memory for 2 vCPU
# (bronze peaks under 300 MiB). Other runs take deploy/ecs/dagster.yaml's default.
INGEST_RUN_SIZE = {"ecs/cpu": "2048", "ecs/memory": "4096"}


def ingest_job_name(table: LakeTable) -> str:
    return f"ingest_{table.name}"


# One job per table: a job holds assets of one partitions definition, and the tables' years differ.
INGEST_JOBS = {
    table.name: define_asset_job(
        name=ingest_job_name(table),
        selection=[raw_key(table), bronze_key(table)],
        description=f"Download and convert {table.name}: raw, then bronze and its checks.",
        tags=INGEST_RUN_SIZE,
    )
    for table in TABLES
}


def crawl_job_name(table: LakeTable) -> str:
    return f"crawl_{table.name}"


CRAWL_JOBS = {
    table.name: define_asset_job(
        name=crawl_job_name(table),
        selection=[catalog_key(table)],
        description=f"Crawl bronze/{table.name} into the catalog and verify that the run's years are registered.",
    )
    for table in TABLES
}
