"""The offline demo: every year the sample portal offers, materialized through Dagster's own jobs."""

from __future__ import annotations

from dagster import DagsterInstance
from tabulate import tabulate

from boston_lake.defs.jobs import ingest_job_name
from boston_lake.defs.partitions import partitions_for
from boston_lake.definitions import build_definitions
from boston_lake.lake.portal import CkanPortal
from boston_lake.lake.raw import offered_years
from boston_lake.lake.settings import Settings
from boston_lake.lake.status import lake_status
from boston_lake.lake.tables import TABLES, LakeTable

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def demo_runs(table: LakeTable, portal: CkanPortal) -> list[dict[str, str]]:
    """Run tags per run: one run per offered year, or one range run over a split table's years."""
    if table.split_by_year:
        keys = partitions_for(table).get_partition_keys()
        return [{RANGE_START: keys[0], RANGE_END: keys[-1]}]
    return [{"dagster/partition": str(year)} for year in offered_years(portal.resources(), table)]


def run_demo(settings: Settings) -> int:
    definitions = build_definitions(settings)
    portal = CkanPortal(settings.portal_url)
    with DagsterInstance.get() as instance:
        for table in TABLES:
            job = definitions.resolve_job_def(ingest_job_name(table))
            for tags in demo_runs(table, portal):
                years = tags.get("dagster/partition") or f"{tags[RANGE_START]}..{tags[RANGE_END]}"
                print(f"materializing {table.name} {years} ...", flush=True)
                result = job.execute_in_process(run_config=QUIET_LOGS, instance=instance, tags=tags, raise_on_error=False)
                if not result.success:
                    print(f"run {result.run_id} failed; see `dagster dev` or the log above", flush=True)
                    return 1
    storage = definitions.resources["storage"]
    rows = [status.as_row() for status in lake_status(storage.raw_zone(), storage.lake_zone(), TABLES)]
    print(tabulate(rows, headers="keys", tablefmt="github"))
    return 0
