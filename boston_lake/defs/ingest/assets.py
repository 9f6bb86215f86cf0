"""Raw and bronze assets, one pair per table, partitioned by year.

Each runs a whole backfill as one run: a 16-year backfill downloads the package metadata once and converts
file after file in one process. Raw and bronze run in separate runs of a backfill (see BRONZE_BACKFILL_POLICY),
so the years raw stored reach bronze even when others failed. Each partition gets its own metadata; Dagster
copies one data version to every partition of a range run (dagster#34013), so a content hash is set as
the data version only for single-partition runs and is always in the `sha256` metadata.
"""

from collections.abc import Iterator, Sequence
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetObservation,
    AssetsDefinition,
    BackfillPolicy,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)
from tabulate import tabulate

from boston_lake.defs.automation import year_ranges
from boston_lake.defs.keys import bronze_key, raw_key
from boston_lake.defs.metadata import column_schema, record_years, size_text
from boston_lake.defs.partitions import all_years, partitions_for, run_years
from boston_lake.defs.resources import CkanPortalResource, LakeStorageResource
from boston_lake.lake.tables import TABLES, LakeTable
from boston_lake.lake.zones.bronze import CONVERTER_VERSION, BronzeError, BronzePartition, BronzeZone
from boston_lake.lake.zones.publish import PublishRefused, ShrinkGuard
from boston_lake.lake.zones.raw import PartialIngestError, RawPartition
from boston_lake.lake.zones.raw_datastore import DEFAULT_FULL_READ_DAYS, LiveRawZone

# One asset group per zone of the lake, so the graph reads raw -> bronze -> catalog by group.
RAW_GROUP, BRONZE_GROUP = "raw", "bronze"
# Dagster puts a parent and child into one backfill run only when their backfill policies are equal; in one
# shared run, a raw year that fails skips bronze for every year. A policy unlike raw's (still one run: no
# table has 1000 years) makes the backfill run bronze after raw, for exactly the years raw stored.
BRONZE_BACKFILL_POLICY = BackfillPolicy.multi_run(max_partitions_per_run=1000)
# The preview shows a few columns that identify a case; the whole schema is in dagster/column_schema.
PREVIEW_COLUMNS = (
    "case_enquiry_id",
    "case_id",
    "open_dt",
    "open_date",
    "case_status",
    "type",
    "service_name",
    "neighborhood",
)


class RawConfig(Config):
    accept_shrink: str = ""
    """Why the DataStore may serve fewer records of a year than the lake holds in this run (e.g. "the city
    withdrew the transitioned case types"); logged with the run. Empty: such a fetch is refused, nothing kept."""
    full_read: bool = False
    """Read every DataStore record again, not only those past the stored ones: sees records edited in the
    DataStore without a new upload, which a refresh otherwise sees only at the periodic full read."""
    full_read_days: float = DEFAULT_FULL_READ_DAYS
    """A refresh of the upload it read before reads only the DataStore records past the stored ones, and all of
    them when the last full read is this many days old (0: every run reads them all); a new upload listed by
    the portal is always read in full."""


class BronzeConfig(Config):
    force: bool = False
    """Rebuild even when the partition was already built from the same raw file by the same converter."""
    accept_shrink: str = ""
    """Why a year may lose more of its published rows or case ids than BOSTON_LAKE_MAX_SHRINK allows in this run
    (e.g. "the city republished 2013 with 10 rows on purpose"); recorded with the year. Empty: such a year is
    refused and the published one stays."""


def _single_version(versions: Sequence[str]) -> DataVersion | None:
    return DataVersion(versions[0]) if len(versions) == 1 else None


def log_unchanged(context: AssetExecutionContext, table: LakeTable, years_by_reason: dict[str, list[int]]) -> None:
    """One line per reason for the years a run left as they were, not one per year: each line is an event that
    Dagster stores, and a refresh of 16 unchanged years would spend more on them than on its own work. Each
    year's metadata still says `changed: false` and why."""
    for reason, years in years_by_reason.items():
        context.log.info(f"{table.name} {year_ranges(years)}: unchanged, {reason}")


def raw_metadata(partition: RawPartition, storage_uri: str) -> dict[str, Any]:
    meta = partition.metadata()
    del meta["data_rows"]  # shown once, as dagster/row_count
    return {
        **meta,
        "key": MetadataValue.path(storage_uri),
        "source_url": MetadataValue.url(meta["source_url"]),
        "bytes": MetadataValue.text(size_text(meta["bytes"])),
        "dagster/row_count": MetadataValue.int(partition.manifest.data_rows),
    }


def bronze_metadata(partition: BronzePartition, storage_uri: str) -> dict[str, Any]:
    meta = partition.metadata()
    del meta["rows"]  # shown once, as dagster/row_count
    # Nulls show as empty cells, not as pandas' `nan`.
    preview = [{column: row[column] for column in PREVIEW_COLUMNS if column in row} for row in partition.preview]
    return {
        **meta,
        "key": MetadataValue.path(storage_uri),
        "bytes": MetadataValue.text(size_text(meta["bytes"])),
        "dagster/row_count": MetadataValue.int(partition.rows),
        "dagster/column_schema": column_schema(
            partition.table, [(field.name, str(field.type)) for field in partition.schema]
        ),
        "preview": MetadataValue.md(
            tabulate(preview, headers="keys", tablefmt="pipe", missingval="") if preview else "(no rows)"
        ),
        **({"shrink_accepted": MetadataValue.json(meta["shrink_accepted"])} if "shrink_accepted" in meta else {}),
    }


def build_ingest_assets(table: LakeTable) -> list[AssetsDefinition]:
    partitions_def = partitions_for(table)
    source = (
        "one growing CKAN resource, read through its DataStore API (JSON) or as CSV, split by open date"
        if table.split_by_year
        else "one CKAN resource per year"
    )

    @asset(
        key=raw_key(table),
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=RAW_GROUP,
        # A year the portal does not publish is observed, not materialized: it stays missing, never failed.
        output_required=False,
        kinds={"csv", "json"} if table.split_by_year else {"csv"},
        description=f"{table.title}: the year's file exactly as downloaded ({source}), with a manifest beside it.",
    )
    def raw_asset(
        context: AssetExecutionContext, config: RawConfig, portal: CkanPortalResource, storage: LakeStorageResource
    ) -> Iterator[MaterializeResult]:
        store = storage.raw_zone()
        zone = LiveRawZone(
            store,
            portal.client(context.log),
            context.log,
            portal.new_system_source,
            portal.datastore_page_limit,
            accept_fewer=config.accept_shrink,
            full_read=config.full_read,
            full_read_days=config.full_read_days,
        )
        failures: dict[int, str] = {}
        try:
            partitions = zone.ingest(table, run_years(context), valid_years=all_years(table))
        except PartialIngestError as error:
            partitions, failures = error.stored, error.failures
        unchanged: dict[str, list[int]] = {}
        for partition in partitions:
            if partition.changed:
                context.log.info(f"{table.name} {partition.year}: stored, {partition.reason}")
            else:
                unchanged.setdefault(partition.reason, []).append(partition.year)
        log_unchanged(context, table, unchanged)
        for year, unpublished in partitions.unpublished.items():
            context.log_event(
                AssetObservation(
                    context.asset_key,
                    partition=str(year),
                    metadata={
                        "published": False,
                        "reason": str(unpublished),
                        "portal_offers": MetadataValue.json(unpublished.offered),
                    },
                    description=f"the portal does not publish {table.name} {year}; the partition stays missing",
                )
            )
        stored = {p.year: raw_metadata(p, store.uri(p.manifest.key)) for p in partitions}
        if record_years(context, stored, failures, absent=partitions.unpublished, retried_alone=True):
            yield MaterializeResult(data_version=_single_version([p.manifest.sha256 for p in partitions]))

    @asset(
        key=bronze_key(table),
        deps=[raw_key(table)],
        partitions_def=partitions_def,
        backfill_policy=BRONZE_BACKFILL_POLICY,
        group_name=BRONZE_GROUP,
        kinds={"parquet", "duckdb"},
        code_version=CONVERTER_VERSION,
        description=(
            f"{table.title}: typed, zstd Parquet with the source's own columns; unparseable rows kept in "
            "the partition's _rejects.csv in _meta/, outside the table's location."
        ),
    )
    def bronze_asset(
        context: AssetExecutionContext, config: BronzeConfig, storage: LakeStorageResource
    ) -> MaterializeResult:
        store = storage.lake_zone()
        zone = BronzeZone(storage.raw_zone(), store, context.log, storage.converter_settings())
        built: dict[int, dict[str, Any]] = {}
        failures: dict[int, str | PublishRefused] = {}
        versions = []
        shrink = ShrinkGuard(storage.max_shrink(table.name), config.accept_shrink)
        unchanged: dict[str, list[int]] = {}
        for year in run_years(context):
            try:
                partition = zone.build(table, year, force=config.force, shrink=shrink)
            except PublishRefused as refused:  # the published year stays; the other years still convert
                context.log.error(refused.line)
                failures[year] = refused
                continue
            except BronzeError as error:  # the other years still convert; the run fails naming this one
                context.log.error(str(error))
                failures[year] = str(error)
                continue
            if partition.changed:
                context.log.info(
                    f"{table.name} {year}: {partition.rows} rows, {partition.rejects} rejects "
                    f"(rebuilt: {partition.reason})"
                )
            else:
                unchanged.setdefault(partition.reason, []).append(year)
            built[year] = bronze_metadata(partition, store.uri(partition.key))
            versions.append(f"{partition.raw_sha256}-c{CONVERTER_VERSION}")
        log_unchanged(context, table, unchanged)
        record_years(context, built, failures)
        return MaterializeResult(data_version=_single_version(versions))

    return [raw_asset, bronze_asset]


INGEST_ASSETS = [definition for table in TABLES for definition in build_ingest_assets(table)]
