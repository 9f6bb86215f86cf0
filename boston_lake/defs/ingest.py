"""Raw and bronze assets, one pair per table, partitioned by year.

Both run a whole backfill as one run (BackfillPolicy.single_run): a 16-year backfill downloads the package
metadata once and converts file after file in one process. Each partition gets its own metadata; Dagster
copies one data version to every partition of a range run (dagster#34013), so a content hash is set as
the data version only for single-partition runs and is always in the `sha256` metadata.
"""

from collections.abc import Sequence
from typing import Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from boston_lake.defs.partitions import all_years, partitions_for, run_years
from boston_lake.defs.resources import CkanPortalResource, LakeStorageResource
from boston_lake.lake.bronze import CONVERTER_VERSION, BronzePartition, BronzeZone
from boston_lake.lake.raw import RawPartition, RawZone
from boston_lake.lake.tables import TABLES, LakeTable

INGEST_GROUP = "ingest"


def raw_key(table: LakeTable) -> AssetKey:
    return AssetKey(["raw", table.name])


def bronze_key(table: LakeTable) -> AssetKey:
    return AssetKey(["bronze", table.name])


class BronzeConfig(Config):
    force: bool = False
    """Rebuild even when the partition was already built from the same raw file by the same converter."""


def _single_version(versions: Sequence[str]) -> DataVersion | None:
    return DataVersion(versions[0]) if len(versions) == 1 else None


def raw_metadata(partition: RawPartition, storage_uri: str) -> dict[str, Any]:
    meta = partition.metadata()
    return {
        **meta,
        "key": MetadataValue.path(storage_uri),
        "source_url": MetadataValue.url(meta["source_url"]),
        "bytes": MetadataValue.int(meta["bytes"]),
        "dagster/row_count": MetadataValue.int(meta["data_rows"]),
    }


def bronze_metadata(partition: BronzePartition, storage_uri: str) -> dict[str, Any]:
    meta = partition.metadata()
    preview = pd.DataFrame(partition.preview)
    return {
        **meta,
        "key": MetadataValue.path(storage_uri),
        "bytes": MetadataValue.int(meta["bytes"]),
        "dagster/row_count": MetadataValue.int(partition.rows),
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(name=field.name, type=str(field.type)) for field in partition.schema]
        ),
        "preview": MetadataValue.md(preview.to_markdown(index=False) if len(preview) else "(no rows)"),
    }


def build_ingest_assets(table: LakeTable) -> list[AssetsDefinition]:
    partitions_def = partitions_for(table)
    source = "one growing CKAN resource, split by open date" if table.split_by_year else "one CKAN resource per year"

    @asset(
        key=raw_key(table),
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=INGEST_GROUP,
        kinds={"csv"},
        description=f"{table.title}: the year's file exactly as downloaded ({source}), with a manifest beside it.",
    )
    def raw_asset(
        context: AssetExecutionContext, portal: CkanPortalResource, storage: LakeStorageResource
    ) -> MaterializeResult:
        store = storage.raw_zone()
        zone = RawZone(store, portal.client(context.log), context.log)
        partitions = zone.ingest(table, run_years(context), valid_years=all_years(table))
        for partition in partitions:
            context.log.info(
                f"{table.name} {partition.year}: {'stored' if partition.changed else 'unchanged'}, {partition.reason}"
            )
            context.add_asset_metadata(
                raw_metadata(partition, store.uri(partition.manifest.key)), partition_key=str(partition.year)
            )
        return MaterializeResult(data_version=_single_version([p.manifest.sha256 for p in partitions]))

    @asset(
        key=bronze_key(table),
        deps=[raw_key(table)],
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=INGEST_GROUP,
        kinds={"parquet", "duckdb"},
        code_version=CONVERTER_VERSION,
        description=(
            f"{table.title}: typed, zstd Parquet with the source's own columns; unparseable rows kept in "
            "_rejects.csv beside the partition."
        ),
    )
    def bronze_asset(
        context: AssetExecutionContext, config: BronzeConfig, storage: LakeStorageResource
    ) -> MaterializeResult:
        store = storage.lake_zone()
        zone = BronzeZone(storage.raw_zone(), store, context.log, storage.converter_settings())
        versions = []
        for year in run_years(context):
            partition = zone.build(table, year, force=config.force)
            context.log.info(
                f"{table.name} {year}: {partition.rows} rows, {partition.rejects} rejects "
                f"({'rebuilt' if partition.changed else 'unchanged'}: {partition.reason})"
            )
            context.add_asset_metadata(bronze_metadata(partition, store.uri(partition.key)), partition_key=str(year))
            versions.append(f"{partition.raw_sha256}-c{CONVERTER_VERSION}")
        return MaterializeResult(data_version=_single_version(versions))

    return [raw_asset, bronze_asset]


INGEST_ASSETS = [definition for table in TABLES for definition in build_ingest_assets(table)]
