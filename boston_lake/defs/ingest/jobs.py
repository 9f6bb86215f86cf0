"""The ingest jobs: what the daily schedule, the demo and a person in the UI launch for one table's years."""

from typing import Any

from dagster import define_asset_job

from boston_lake.defs.keys import bronze_key, ingest_job_name, raw_key
from boston_lake.lake.tables import TABLES

# The size of an ingest run's container where runs get their own (EcsRunLauncher reads these tags): the bronze
# benchmark's 2 cores, and 4 GB, Fargate's least memory for 2 vCPU (bronze peaks under 300 MiB). Other runs take
# deploy/ecs/dagster.yaml's default. Elsewhere the tags would only claim a size no one gives the run.
INGEST_RUN_SIZE = {"ecs/cpu": "2048", "ecs/memory": "4096"}


def ingest_jobs(run_launcher: str) -> list[Any]:  # Dagster exports no name for an unresolved asset job
    """One job per table (a job holds assets of one partitions definition, and the tables' years differ), sized
    for the instance's run launcher (BOSTON_LAKE_RUN_LAUNCHER)."""
    return [
        define_asset_job(
            name=ingest_job_name(table),
            selection=[raw_key(table), bronze_key(table)],
            description=f"Download and convert {table.name}: raw, then bronze and its checks.",
            tags=INGEST_RUN_SIZE if run_launcher == "ecs" else None,
        )
        for table in TABLES
    ]
