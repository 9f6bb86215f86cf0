"""Gold assets: one per gold table, a year per partition, built from the same silver year, committed to the gold
table's Iceberg table, and carrying charts of the answers in their materialization metadata (one set per run,
on its newest year).

They follow silver by themselves: declarative automation requests a gold year whenever its silver year is
updated (any year, not just the latest: backfilled silver years flow through too), and the sensor that
evaluates it is on by default.
"""

from collections.abc import Callable, Iterator

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    BackfillPolicy,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
)

from boston_lake.defs.automation import REQUESTED_BY, year_ranges
from boston_lake.defs.keys import CRAWLER_POOL, SILVER_KEY
from boston_lake.defs.metadata import column_schema, observe_empty_years, record_years
from boston_lake.defs.partitions import SILVER_PARTITIONS, run_years
from boston_lake.defs.resources import LakeStorageResource
from boston_lake.lake.answers import charts, questions
from boston_lake.lake.catalog.registration import TABLE_ROWS
from boston_lake.lake.zones.gold import GOLD_TABLES, GOLD_ZONE, INTAKE, SERVICE_LEVELS, GoldRun, GoldTable

GOLD_GROUP = "gold"
GOLD_PARTITIONS = SILVER_PARTITIONS  # gold year Y reads silver year Y
FOLLOW_SILVER = AutomationCondition.eager().without(AutomationCondition.in_latest_time_window())

ChartsOfRun = Callable[[questions.Query, int], dict[str, bytes]]


def gold_key(table: GoldTable) -> AssetKey:
    return AssetKey([GOLD_ZONE, table.name])


def service_level_charts(query: questions.Query, newest: int) -> dict[str, bytes]:
    """The volume across the 2025 switch, speed and punctuality, each over every year of the table."""
    return {
        "Cases per month by source system": charts.cases_per_month_png(questions.cases_per_month(query)),
        "Median hours to close by neighborhood and year": charts.median_hours_by_neighborhood_png(
            questions.median_hours_by_neighborhood(query)
        ),
        "On-time share by department and year": charts.on_time_share_by_department_png(
            questions.on_time_share_by_department(query)
        ),
    }


def intake_charts(query: questions.Query, newest: int) -> dict[str, bytes]:
    """When the city is asked, in the run's newest year."""
    return {
        f"Cases opened by weekday and hour, {newest}": charts.intake_heatmap_png(
            questions.intake_by_weekday_and_hour(query), newest
        )
    }


def build_gold_asset(table: GoldTable, charts_of_run: ChartsOfRun) -> AssetsDefinition:
    @asset(
        key=gold_key(table),
        deps=[SILVER_KEY],
        partitions_def=GOLD_PARTITIONS,
        backfill_policy=BackfillPolicy.single_run(),
        automation_condition=FOLLOW_SILVER,
        pool=CRAWLER_POOL,  # one writer of the catalogs at a time, as the crawls
        group_name=GOLD_GROUP,
        kinds={"duckdb", "iceberg"},
        # A year with no rows is observed, not materialized: it stays missing rather than filled with 0 rows.
        output_required=False,
        description=f"boston311.{table.name}: {table.description}",
    )
    def gold_asset(context: AssetExecutionContext, storage: LakeStorageResource) -> Iterator[MaterializeResult]:
        tables, years = storage.iceberg(), run_years(context)
        memory_limit = storage.duckdb_memory_limit()
        run_id = context.run.run_id
        with GoldRun(tables, table, memory_limit=memory_limit, log=context.log, run_id=run_id) as gold_run:
            built = gold_run.build(years)
        empty = {p.year: f"its silver year holds {p.silver_rows} rows" for p in built if not p.rows}
        observe_empty_years(context, context.asset_key, empty)
        filled = [partition for partition in built if partition.rows]
        if not filled:
            if record_years(context, {}, {}, absent=empty):
                yield MaterializeResult()
            return

        # The charts span the table's years: drawn once per run, on the newest year's materialization (the one the
        # asset's page shows as the latest); the run's other years say where they are.
        filled_years = [partition.year for partition in filled]
        newest = max(filled_years)
        with questions.gold_answers(tables, [table], memory_limit) as query:
            images = charts_of_run(query, newest)
        charts_elsewhere = MetadataValue.text(
            f"on the {newest} materialization of the same run (years {year_ranges(filled_years)})"
        )
        iceberg_table = tables.table(table.name)
        snapshot = iceberg_table.current_snapshot()
        columns = [(field.name, str(field.field_type)) for field in iceberg_table.schema().fields]
        table_wide = {
            "dagster/table_name": f"{tables.database}.{table.name}",
            "dagster/column_schema": column_schema(table.name, columns),
            TABLE_ROWS: int(snapshot.summary["total-records"] or 0) if snapshot and snapshot.summary else 0,
        }
        metadata_by_year = {
            partition.year: {
                "changed": partition.changed,
                "reason": partition.reason,
                "dagster/row_count": MetadataValue.int(partition.rows),
                "silver_rows": MetadataValue.int(partition.silver_rows),
                "path": MetadataValue.path(tables.store.uri(partition.key)),
                "snapshot_id": MetadataValue.text(str(partition.snapshot_id)),
                "charts": MetadataValue.md(charts.markdown(images)) if partition.year == newest else charts_elsewhere,
                **table_wide,
            }
            for partition in filled
        }
        if record_years(context, metadata_by_year, {}, absent=empty):
            yield MaterializeResult()

    return gold_asset


CHARTS_BY_TABLE: dict[str, ChartsOfRun] = {SERVICE_LEVELS.name: service_level_charts, INTAKE.name: intake_charts}
GOLD_ASSETS = [build_gold_asset(table, CHARTS_BY_TABLE[table.name]) for table in GOLD_TABLES]

GOLD_JOB = define_asset_job(
    "build_gold",
    selection=AssetSelection.assets(*GOLD_ASSETS),
    description="Both gold tables for the years chosen, from the silver years of the same number.",
)

GOLD_KEYS = [gold_key(table) for table in GOLD_TABLES]
GOLD_AUTOMATION_NAME = "gold_follows_silver"
GOLD_AUTOMATION = AutomationConditionSensorDefinition(
    GOLD_AUTOMATION_NAME,
    target=GOLD_KEYS,
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    # Who requested the run, as on the crawl and silver sensors' runs: the retry sensor (gold/sensors.py) counts
    # the attempts at a year among them.
    run_tags={REQUESTED_BY: GOLD_AUTOMATION_NAME},
    description="Rebuilds a gold year whenever its silver year is materialized.",
)
