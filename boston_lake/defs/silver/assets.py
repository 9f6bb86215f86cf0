"""The silver table `silver/service_requests`: the asset that builds and registers its years, and its checks.

A silver year reads bronze Y-1..Y+1 of both tables (a case opened on New Year's Day sits in two files), stages
one file, and commits it to the Iceberg table `boston311.service_requests` in the same run, so a finished run is
always queryable; the materialization names the snapshot. The run shares the crawler pool with the bronze crawls
(the bronze years it reads are being registered by them).

A year that holds no case (no bronze file it reads has one opened in it) is observed, not materialized: the
partition stays missing rather than filled with 0 rows. The asset's output is therefore optional, and its checks
are judged in the same step (a check step of its own would be skipped whenever the output is); the step is
subsettable, so each check still runs alone from the Checks tab.
"""

import warnings
from collections.abc import Generator, Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetDep,
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    BetaWarning,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableSchema,
    TimeWindowPartitionMapping,
    multi_asset,
)

from boston_lake.defs.keys import CRAWLER_POOL, SILVER_KEY, bronze_key
from boston_lake.defs.metadata import column_schema, observe_empty_years, record_years
from boston_lake.defs.partitions import SILVER_PARTITIONS, run_years
from boston_lake.defs.resources import LakeStorageResource
from boston_lake.defs.silver.checks import SILVER_CHECK_SPECS, check_results, silver_years
from boston_lake.lake.catalog.iceberg import IcebergTables
from boston_lake.lake.tables import TABLES
from boston_lake.lake.targets import GLUE
from boston_lake.lake.zones.publish import PublishRefused, ShrinkGuard
from boston_lake.lake.zones.silver.duckdb_build import SilverPartition, SilverZone
from boston_lake.lake.zones.silver.inputs import NEIGHBOURS
from boston_lake.lake.zones.silver.model import COLUMNS, DESCRIPTION, SILVER_TABLE, TRANSFORM_VERSION

SILVER_GROUP = "silver"
# Year Y reads bronze Y-1..Y+1; years a source lacks (NEW SYSTEM before 2025, next year) are simply not read.
with warnings.catch_warnings():  # the flag is beta in Dagster 1.13; the CLI and demo print no warnings
    warnings.simplefilter("ignore", BetaWarning)
    NEIGHBOUR_YEARS = TimeWindowPartitionMapping(
        start_offset=NEIGHBOURS[0], end_offset=NEIGHBOURS[-1], allow_nonexistent_upstream_partitions=True
    )
BAR_WIDTH = 30


class SilverConfig(Config):
    force: bool = False
    """Rebuild even when the year was already built from the same bronze files by the same transform."""
    accept_shrink: str = ""
    """Why a year may lose more of its published rows or case ids than BOSTON_LAKE_MAX_SHRINK allows in this run
    (e.g. "bronze 2023 was republished with 10 rows on purpose"); recorded with the year. Empty: such a year is
    refused and the published one stays."""


def silver_column_schema() -> TableSchema:
    return column_schema(SILVER_TABLE, [(column.name, str(column.type)) for column in COLUMNS])


def cases_per_month_chart(cases_per_month: dict[str, int]) -> str:
    """A bar per month in Markdown, which the Dagster UI renders in the materialization's metadata."""
    if not cases_per_month:
        return "(no cases)"
    widest = max(cases_per_month.values())
    lines = ["| month (Boston) | cases | |", "|---|---:|---|"]
    for month, cases in cases_per_month.items():
        lines.append(f"| {month} | {cases:,} | {'█' * max(1, round(BAR_WIDTH * cases / widest))} |")
    return "\n".join(lines)


def silver_metadata(partition: SilverPartition, storage_uri: str) -> dict[str, Any]:
    return {
        **partition.metadata(),
        "key": MetadataValue.path(storage_uri),
        "snapshot_id": MetadataValue.text(str(partition.snapshot_id)),
        "bytes": MetadataValue.int(partition.bytes),
        "dagster/row_count": MetadataValue.int(partition.summary.rows),
        "dagster/column_schema": silver_column_schema(),
        "rows_by_generation": MetadataValue.json(partition.summary.rows_by_generation),
        "local_open_hours": MetadataValue.json(partition.summary.local_open_hours),
        "cases_per_month": MetadataValue.md(cases_per_month_chart(partition.summary.cases_per_month)),
        **(
            {"shrink_accepted": MetadataValue.json(partition.shrink_accepted.metadata())}
            if partition.shrink_accepted
            else {}
        ),
    }


@multi_asset(
    name="silver__service_requests",  # the op's name in run config, as an @asset of this key would have it
    specs=[
        AssetSpec(
            SILVER_KEY,
            deps=[AssetDep(bronze_key(table), partition_mapping=NEIGHBOUR_YEARS) for table in TABLES],
            group_name=SILVER_GROUP,
            kinds={"parquet"},  # and the engine of the target (definitions.py)
            code_version=TRANSFORM_VERSION,
            description=(f"{DESCRIPTION} The Iceberg table boston311.service_requests."),
            skippable=True,  # a run where some year holds no case materializes the others one by one
        )
    ],
    check_specs=SILVER_CHECK_SPECS,
    can_subset=True,  # each check runs alone from the Checks tab, without a build
    partitions_def=SILVER_PARTITIONS,
    backfill_policy=BackfillPolicy.single_run(),
    pool=CRAWLER_POOL,
)
def silver_service_requests(
    context: AssetExecutionContext, config: SilverConfig, storage: LakeStorageResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    tables = storage.iceberg()
    if SILVER_KEY in context.selected_asset_keys:
        years = yield from _build_years(context, config, storage, tables)
    elif context.has_partition_key or context.has_partition_key_range:
        years = run_years(context)
    else:  # a check run on its own, unpartitioned: every year the table holds
        years = silver_years(tables)
    selected = {key.name for key in context.selected_asset_check_keys}
    if selected:
        context.log.info(f"checking silver for {years}")
        yield from check_results(tables, years, selected)


def _build_years(
    context: AssetExecutionContext, config: SilverConfig, storage: LakeStorageResource, tables: IcebergTables
) -> Generator[MaterializeResult, None, list[int]]:
    """Build the run's years into `tables` (the checks' too: the files a snapshot holds are read once); yields the
    output when it stands for every year of the run. Returns the years materialized."""
    lake = tables.store
    zone = SilverZone(tables, context.log, storage.silver_settings(), context.run.run_id)
    shrink = ShrinkGuard(storage.max_shrink(SILVER_TABLE), config.accept_shrink)
    built: dict[int, dict[str, Any]] = {}
    empty: dict[int, str] = {}
    failures: dict[int, str | PublishRefused] = {}
    fingerprints = []
    for year in run_years(context):
        try:
            if storage.target.silver_engine == GLUE:  # the AWS target: one Glue job run per year
                # dagster_aws.pipes costs every run of the code location 1-3 s to import: only Glue's runs pay it.
                from boston_lake.defs.silver.glue import build_on_glue

                glue_job = storage.target.silver_glue_job()
                partition = build_on_glue(context, glue_job, tables, year, force=config.force, shrink=shrink)
            else:
                partition = zone.build(year, force=config.force, shrink=shrink)
        except PublishRefused as refused:  # the published year stays; the other years still build
            context.log.error(refused.line)
            failures[year] = refused
            continue
        read_as_empty = ", ".join(partition.inputs.missing) or "none"
        if not partition.summary.rows:
            empty[year] = (
                f"no case opened in {year} is in the bronze it reads ({partition.inputs.rows} rows read; "
                f"read as empty: {read_as_empty})"
            )
            continue
        context.log.info(
            f"silver {year}: {partition.summary.rows} cases from {partition.inputs.rows} bronze rows, "
            f"{partition.ledger['duplicates_merged']} duplicates merged "
            f"({'rebuilt' if partition.changed else 'unchanged'}: {partition.reason}); read as empty: {read_as_empty}"
        )
        built[year] = silver_metadata(partition, lake.uri(partition.key))
        fingerprints.append(partition.inputs.fingerprint())
    observe_empty_years(context, SILVER_KEY, empty)
    table_name = f"{tables.database}.{SILVER_TABLE}"
    built = {year: {**metadata, "dagster/table_name": table_name} for year, metadata in built.items()}
    if record_years(context, built, failures, absent=empty):
        yield MaterializeResult(
            asset_key=SILVER_KEY, data_version=DataVersion(fingerprints[0]) if len(fingerprints) == 1 else None
        )
    return sorted(built)


SILVER_ASSETS = [silver_service_requests]
