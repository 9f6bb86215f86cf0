"""The silver table `silver/service_requests`: its asset, checks, job and the sensor that keeps it current.

A silver year reads bronze Y-1..Y+1 of both tables (a case opened on New Year's Day sits in two files), writes
one object, and registers the year in `boston311.service_requests` with the project's crawler in the same run,
so a finished run is always queryable. Registration shares the crawler pool with the bronze crawls.
"""

import json
import warnings
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    BetaWarning,
    Config,
    DagsterEventType,
    DagsterInstance,
    DataVersion,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    TableColumn,
    TableSchema,
    TimeWindowPartitionMapping,
    asset,
    define_asset_job,
    multi_asset_check,
    sensor,
)

from boston_lake.defs.catalog import CRAWLER_POOL, column_schema
from boston_lake.defs.ingest import bronze_key
from boston_lake.defs.partitions import partitions_for, run_years
from boston_lake.defs.resources import CatalogResource, LakeStorageResource
from boston_lake.defs.sensors import RANGE_END, RANGE_START, contiguous_blocks, landed_years
from boston_lake.defs.silver_glue import build_on_glue
from boston_lake.lake import layout
from boston_lake.lake.catalog.registration import direct_crawl, register
from boston_lake.lake.tables import LEGACY_REQUESTS, TABLES
from boston_lake.lake.targets import GLUE
from boston_lake.lake.zones.silver.duckdb_build import SilverPartition, SilverZone
from boston_lake.lake.zones.silver.inputs import NEIGHBOURS
from boston_lake.lake.zones.silver.model import COLUMNS, SILVER_TABLE, SILVER_ZONE, TRANSFORM_VERSION
from boston_lake.lake.zones.silver.quality import NIGHT_HOURS, SilverFacts, silver_facts, silver_years

SILVER_KEY = AssetKey(["silver", SILVER_TABLE])
SILVER_GROUP = "silver"
SILVER_JOB = "build_silver_service_requests"
# Silver years are the legacy table's years: 2011 to the running year.
SILVER_PARTITIONS = partitions_for(LEGACY_REQUESTS)
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


def silver_column_schema() -> TableSchema:
    return TableSchema(columns=[TableColumn(name=c.name, type=str(c.type), description=c.description) for c in COLUMNS])


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
        "bytes": MetadataValue.int(partition.bytes),
        "dagster/row_count": MetadataValue.int(partition.summary.rows),
        "dagster/column_schema": silver_column_schema(),
        "rows_by_generation": MetadataValue.json(partition.summary.rows_by_generation),
        "local_open_hours": MetadataValue.json(partition.summary.local_open_hours),
        "cases_per_month": MetadataValue.md(cases_per_month_chart(partition.summary.cases_per_month)),
    }


@asset(
    key=SILVER_KEY,
    deps=[AssetDep(bronze_key(table), partition_mapping=NEIGHBOUR_YEARS) for table in TABLES],
    partitions_def=SILVER_PARTITIONS,
    backfill_policy=BackfillPolicy.single_run(),
    pool=CRAWLER_POOL,
    group_name=SILVER_GROUP,
    kinds={"parquet"},  # and the engine of the target (definitions.py)
    code_version=TRANSFORM_VERSION,
    description=(
        "Every 311 case once, legacy and NEW SYSTEM in one model, times as true UTC instants; a case belongs to the "
        "year of its open time in Boston. Registered as boston311.service_requests."
    ),
)
def silver_service_requests(
    context: AssetExecutionContext, config: SilverConfig, storage: LakeStorageResource, catalog: CatalogResource
) -> MaterializeResult:
    lake = storage.lake_zone()
    zone = SilverZone(lake, context.log)
    years = run_years(context)
    fingerprints = []
    for year in years:
        if storage.target.silver_engine == GLUE:  # the AWS target: one Glue job run per year
            partition = build_on_glue(context, storage.target.silver_glue_job(), lake, year, force=config.force)
        else:
            partition = zone.build(year, force=config.force)
        context.log.info(
            f"silver {year}: {partition.summary.rows} cases from {partition.inputs.rows} bronze rows, "
            f"{partition.ledger['duplicates_merged']} duplicates merged "
            f"({'rebuilt' if partition.changed else 'unchanged'}: {partition.reason}); "
            f"read as empty: {', '.join(partition.inputs.missing) or 'none'}"
        )
        context.add_asset_metadata(silver_metadata(partition, lake.uri(partition.key)), partition_key=str(year))
        fingerprints.append(partition.inputs.fingerprint())
    glue = catalog.catalog()
    prefix = layout.table_prefix(SILVER_ZONE, SILVER_TABLE)
    update = register(
        lambda: direct_crawl(lake, glue, catalog.database, SILVER_TABLE, context.log, prefix=prefix),
        glue,
        catalog.database,
        SILVER_TABLE,
        years,
    )
    context.log.info(update.crawl_summary)
    context.add_asset_metadata(
        {
            **update.metadata(),
            "dagster/table_name": f"{catalog.database}.{SILVER_TABLE}",
            "catalog_column_schema": column_schema(update.after),
        }
    )
    return MaterializeResult(data_version=DataVersion(fingerprints[0]) if len(fingerprints) == 1 else None)


# -- checks ------------------------------------------------------------------------------------------------


def _unique_result(facts: list[SilverFacts]) -> AssetCheckResult:
    failing = [f for f in facts if f.null_ids or f.duplicate_ids or f.ids_in_neighbours]
    return AssetCheckResult(
        check_name="case_id_unique",
        passed=not failing,
        description="; ".join(
            f"{f.year}: {f.null_ids} rows without case_id, {f.duplicate_ids} ids repeated, {f.ids_in_neighbours} "
            f"ids also in a neighbouring year (e.g. {f.neighbour_examples})"
            for f in failing
        )
        or None,
        metadata={
            "duplicate_ids": sum(f.duplicate_ids for f in facts),
            "ids_in_neighbours": sum(f.ids_in_neighbours for f in facts),
            "failing_years": [f.year for f in failing],
        },
    )


def _placed_result(facts: list[SilverFacts]) -> AssetCheckResult:
    failing = [f for f in facts if f.bronze_ids_unplaced or f.bronze_ids_placed_twice]
    details = []
    for f in failing:
        unbuilt = f" (silver {f.silver_years_missing} not built yet)" if f.silver_years_missing else ""
        details.append(
            f"{f.year}: of {f.bronze_ids} bronze case ids, {f.bronze_ids_unplaced} are in no silver year{unbuilt} "
            f"(e.g. {f.unplaced_examples}) and {f.bronze_ids_placed_twice} in more than one"
        )
    return AssetCheckResult(
        check_name="bronze_cases_placed_once",
        passed=not failing,
        description="; ".join(details) or None,
        metadata={
            "bronze_case_ids": sum(f.bronze_ids for f in facts),
            "unplaced": sum(f.bronze_ids_unplaced for f in facts),
            "placed_twice": sum(f.bronze_ids_placed_twice for f in facts),
            "failing_years": [f.year for f in failing],
        },
    )


def _trough_result(facts: list[SilverFacts]) -> AssetCheckResult:
    judged = [f for f in facts if f.night_trough_hour is not None]
    failing = [f for f in judged if f.night_trough_hour not in NIGHT_HOURS]
    return AssetCheckResult(
        check_name="local_hour_trough_at_night",
        passed=not failing,
        description="; ".join(
            f"{f.year}: the quietest local hours are around {f.night_trough_hour:02d}:00, not in the small hours; "
            "a time base is wrong"
            for f in failing
        )
        or None,
        metadata={
            "trough_hour_by_year": MetadataValue.json({str(f.year): f.night_trough_hour for f in judged}),
            "night_hours": f"{NIGHT_HOURS.start:02d}-{NIGHT_HOURS.stop - 1:02d}",
            "failing_years": [f.year for f in failing],
        },
    )


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            "case_id_unique",
            asset=SILVER_KEY,
            description="Every case id appears once in the year and in neither neighbouring year.",
        ),
        AssetCheckSpec(
            "bronze_cases_placed_once",
            asset=SILVER_KEY,
            description="Every case id of the year's bronze files is in exactly one silver year (Y-1, Y or Y+1).",
        ),
        AssetCheckSpec(
            "local_hour_trough_at_night",
            asset=SILVER_KEY,
            description="The quietest three local hours of opened_at are centred in 01:00-05:00 Boston time.",
        ),
    ],
    name="silver_service_requests_checks",
)
def silver_checks(context: AssetCheckExecutionContext, storage: LakeStorageResource) -> Iterator[AssetCheckResult]:
    lake = storage.lake_zone()
    partitioned = context.has_partition_key or context.has_partition_key_range
    years = [int(key) for key in context.partition_keys] if partitioned else silver_years(lake)
    context.log.info(f"checking silver for {years}")
    facts = [silver_facts(lake, year) for year in years]
    yield _unique_result(facts)
    yield _placed_result(facts)
    yield _trough_result(facts)


SILVER_BUILD_JOB = define_asset_job(
    name=SILVER_JOB,
    selection=[SILVER_KEY],
    description="Build silver years from bronze, register them in boston311.service_requests, and check them.",
)


# -- kept current --------------------------------------------------------------------------------------------


def silver_years_to_rebuild(instance: DagsterInstance, landed_at: dict[int, int]) -> list[int]:
    """The silver years whose window holds a bronze year that landed changed (`landed_at`: year -> the newest
    landing's storage id) and that no silver build has followed since.

    A silver year materialized after every landing it reads is not rebuilt again, so a lost or fresh cursor
    (the demo builds silver in-process, then `make demo-ui` starts the daemon on the same instance) costs nothing.
    """
    partition_years = {int(key) for key in SILVER_PARTITIONS.get_partition_keys()}
    newest_input: dict[int, int] = {}
    for bronze_year, storage_id in landed_at.items():
        for offset in NEIGHBOURS:
            silver_year = bronze_year - offset
            if silver_year in partition_years:
                newest_input[silver_year] = max(newest_input.get(silver_year, 0), storage_id)
    built = instance.get_latest_storage_id_by_partition(
        SILVER_KEY, DagsterEventType.ASSET_MATERIALIZATION, partitions={str(year) for year in newest_input}
    )
    return sorted(year for year, landed in newest_input.items() if built.get(str(year), 0) < landed)


@sensor(
    name="rebuild_silver_on_bronze_change",
    jobs=[SILVER_BUILD_JOB],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="When a bronze year is rebuilt, rebuilds and re-registers the silver years that read it.",
)
def rebuild_silver_on_bronze_change(context: SensorEvaluationContext) -> SensorResult:
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    landed_at: dict[int, int] = {}
    for table in TABLES:
        landed = landed_years(context.instance, table, cursor.get(table.name))
        for year, storage_id in landed.changed.items():
            landed_at[year] = max(landed_at.get(year, 0), storage_id)
        if landed.newest_storage_id is not None:
            cursor[table.name] = landed.newest_storage_id
    affected = silver_years_to_rebuild(context.instance, landed_at)
    stamp = "-".join(str(cursor[name]) for name in sorted(cursor))
    requests = [
        RunRequest(
            run_key=f"silver:{stamp}:{first}-{last}",
            job_name=SILVER_JOB,
            tags={"dagster/partition": str(first)}
            if first == last
            else {RANGE_START: str(first), RANGE_END: str(last)},
        )
        for first, last in contiguous_blocks(affected)
    ]
    new_cursor = json.dumps(cursor, sort_keys=True)
    if requests:
        context.log.info(f"bronze years {sorted(landed_at)} changed: rebuilding silver {affected}")
        return SensorResult(run_requests=requests, cursor=new_cursor)
    return SensorResult(
        cursor=new_cursor,
        skip_reason="every silver year reading a bronze year that changed is built or requested"
        if landed_at
        else "no bronze year changed since the last tick",
    )


SILVER_ASSETS = [silver_service_requests]
SILVER_CHECKS = [silver_checks]
SILVER_JOBS = [SILVER_BUILD_JOB]
SILVER_SENSORS = [rebuild_silver_on_bronze_change]
