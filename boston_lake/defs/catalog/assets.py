"""Catalog-table assets, one per table, partitioned by year like the bronze they describe, and their checks.

Materializing any set of years is one crawl of the table's bronze prefix (crawlers see a prefix, not a
year), after which every year of the run must be registered, or the run fails naming the missing ones.
All crawls share one Dagster pool with a limit of one, so two never run at once even across runs.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset_check,
)

from boston_lake.defs.keys import CRAWLER_POOL, bronze_key, catalog_key
from boston_lake.defs.metadata import catalog_column_schema, size_text
from boston_lake.defs.partitions import partitions_for, run_years
from boston_lake.defs.resources import CatalogResource, LakeStorageResource
from boston_lake.lake import layout
from boston_lake.lake.catalog.registration import TABLE_ROWS, TableSnapshot, partition_record_count, register
from boston_lake.lake.tables import TABLES, LakeTable
from boston_lake.lake.zones.bronze import open_parquet
from boston_lake.lake.zones.bronze_quality import bronze_years

CATALOG_GROUP = "catalog"


def build_catalog_asset(table: LakeTable) -> AssetsDefinition:
    @asset(
        key=catalog_key(table),
        deps=[bronze_key(table)],
        partitions_def=partitions_for(table),
        backfill_policy=BackfillPolicy.single_run(),
        pool=CRAWLER_POOL,
        group_name=CATALOG_GROUP,
        kinds={"parquet"},
        description=(
            f"The catalog table boston311.{table.name}: columns merged across schema generations, one partition "
            "per bronze year with its statistics, a table version archived at every change."
        ),
    )
    def catalog_asset(context: AssetExecutionContext, catalog: CatalogResource) -> MaterializeResult:
        years = run_years(context)
        # The run was requested after its years landed; a managed crawl must not have started before that.
        run = context.instance.get_run_record_by_id(context.run.run_id)
        landed_at = run.create_timestamp if run else datetime.now(UTC)
        if landed_at.tzinfo is None:  # run storage keeps naive UTC
            landed_at = landed_at.replace(tzinfo=UTC)
        glue = catalog.catalog()
        update = register(
            lambda: catalog.crawl(table.name, years, context.log, landed_at),
            glue,
            catalog.database,
            table.name,
            years,
        )
        # The crawler logged its summary and conflicts as it ran; they are kept here in the metadata only.
        for year in years:
            parameters = update.after.partitions[str(year)]
            state = (
                "added"
                if str(year) in update.partitions_added
                else ("updated" if str(year) in update.partitions_updated else "unchanged")
            )
            context.add_asset_metadata(
                {
                    "partition": state,
                    "dagster/row_count": MetadataValue.int(partition_record_count(parameters)),
                    "size": MetadataValue.text(size_text(int(parameters.get("sizeKey", 0) or 0))),
                },
                partition_key=str(year),
            )
        context.add_asset_metadata(
            {
                **update.metadata(),
                "crawl": MetadataValue.text(update.crawl_summary),
                "dagster/table_name": f"{catalog.database}.{table.name}",
                "dagster/column_schema": catalog_column_schema(table.name, update.after),
                "catalog": MetadataValue.path(glue.uri()),
            }
        )
        return MaterializeResult()

    return catalog_asset


CATALOG_ASSETS = [build_catalog_asset(table) for table in TABLES]


# -- checks ------------------------------------------------------------------------------------------------


def _last_crawl_changes(context: AssetCheckExecutionContext, asset_key: AssetKey) -> tuple[list[str], list[str]]:
    """Columns the latest crawl added to and removed from an existing table, as its materialization recorded them."""
    event = context.instance.get_latest_materialization_event(asset_key)
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if "schema_changed" not in metadata or not metadata["schema_changed"].value:
        return [], []
    return list(metadata["columns_added"].value), list(metadata["columns_removed"].value)


def build_catalog_checks(table: LakeTable) -> AssetChecksDefinition:
    asset_key = catalog_key(table)
    specs = [
        AssetCheckSpec(
            "bronze_partitions_registered",
            asset=asset_key,
            description="Every year that has a bronze partition is a partition of the catalog table.",
        ),
        AssetCheckSpec(
            "record_count_matches_bronze",
            asset=asset_key,
            description="The table's recordCount equals the rows in its bronze Parquet footers.",
        ),
        AssetCheckSpec(
            "schema_unchanged",
            asset=asset_key,
            description="Warns, naming the columns, when the last crawl changed the table's columns.",
        ),
    ]

    # can_subset: each check can run on its own from the UI; all three read the same snapshot, which is cheap.
    @multi_asset_check(specs=specs, name=f"catalog_{table.name}_checks", can_subset=True)
    def catalog_checks(
        context: AssetCheckExecutionContext, catalog: CatalogResource, storage: LakeStorageResource
    ) -> Iterator[AssetCheckResult]:
        selected = {key.name for key in context.selected_asset_check_keys}
        glue, lake = catalog.catalog(), storage.lake_zone()
        snapshot = TableSnapshot.take(glue, catalog.database, table.name)
        in_bronze = bronze_years(lake, table)
        missing = [year for year in in_bronze if str(year) not in snapshot.partitions]
        if "bronze_partitions_registered" in selected:
            yield AssetCheckResult(
                check_name="bronze_partitions_registered",
                passed=snapshot.exists and not missing,
                description=(f"not registered: {missing}" if missing else None)
                if snapshot.exists
                else f"{catalog.database}.{table.name} is not in the catalog; crawl it",
                metadata={
                    "not_registered": MetadataValue.text(", ".join(map(str, missing)) or "none"),
                    "bronze_years": in_bronze,
                    "registered_years": sorted(int(y) for y in snapshot.partitions),
                },
            )
        if "record_count_matches_bronze" in selected:
            bronze_rows = sum(
                open_parquet(lake, layout.bronze_data_key(table.name, year)).metadata.num_rows for year in in_bronze
            )
            yield AssetCheckResult(
                check_name="record_count_matches_bronze",
                passed=snapshot.exists and snapshot.record_count == bronze_rows,
                description=None
                if snapshot.record_count == bronze_rows
                else f"recordCount {snapshot.record_count} != {bronze_rows} rows in bronze; recrawl",
                metadata={TABLE_ROWS: snapshot.record_count, "bronze_rows": bronze_rows},
            )
        if "schema_unchanged" in selected:
            added, removed = _last_crawl_changes(context, asset_key)
            yield AssetCheckResult(
                check_name="schema_unchanged",
                passed=not (added or removed),
                severity=AssetCheckSeverity.WARN,
                description=f"the last crawl added columns {added or 'none'} and removed columns {removed or 'none'}"
                if added or removed
                else None,
                metadata={
                    "schema_version": snapshot.version_id or "",
                    "columns_added": added,
                    "columns_removed": removed,
                },
            )

    return catalog_checks


CATALOG_CHECKS = [build_catalog_checks(table) for table in TABLES]
