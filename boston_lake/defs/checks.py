"""Checks on bronze partitions, judged from one read of each year's id and open-date columns.

They run after every materialization that selects them (the default in the UI) and on their own from the
asset's Checks tab. A run over several years judges each year and names the ones that fail.
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)

from boston_lake.defs.ingest import bronze_key
from boston_lake.defs.resources import LakeStorageResource
from boston_lake.lake import layout
from boston_lake.lake.quality import PartitionFacts, bronze_years, partition_facts
from boston_lake.lake.tables import TABLES, LakeTable

# Real yearly files carry a few cases across the boundary (a case opened late on Dec 31 in another
# time zone's clock); more than this share means the file is in the wrong year's slot.
MAX_OUTSIDE_SHARE = 0.01


def _ids_result(facts: list[PartitionFacts]) -> AssetCheckResult:
    failing = [f for f in facts if f.null_ids or f.duplicate_ids]
    return AssetCheckResult(
        check_name="case_id_present_and_unique",
        passed=not failing,
        description="; ".join(
            f"{f.year}: {f.null_ids} rows without {f.id_column}, "
            f"{f.duplicate_ids} ids repeated (e.g. {f.duplicate_examples})"
            for f in failing
        )
        or None,
        metadata={
            "null_ids": sum(f.null_ids for f in facts),
            "duplicate_ids": sum(f.duplicate_ids for f in facts),
            "failing_years": [f.year for f in failing],
        },
    )


def _reconcile_result(facts: list[PartitionFacts]) -> AssetCheckResult:
    failing = [f for f in facts if not f.reconciles]
    details = []
    for f in failing:
        if f.raw_data_rows is None:
            details.append(f"{f.year}: the raw partition has no manifest")
        elif f.built_from_sha256 != f.raw_sha256:
            details.append(
                f"{f.year}: bronze was built from raw {f.built_from_sha256[:12]} but raw now holds "
                f"{(f.raw_sha256 or '')[:12]}; rebuild bronze"
            )
        else:
            details.append(f"{f.year}: {f.rows} rows + {f.rejects} rejects != {f.raw_data_rows} data rows in raw")
    return AssetCheckResult(
        check_name="rows_reconcile_with_raw",
        passed=not failing,
        description="; ".join(details) or None,
        metadata={
            "bronze_rows": sum(f.rows for f in facts),
            "rejects": sum(f.rejects for f in facts),
            "raw_data_rows": sum(f.raw_data_rows or 0 for f in facts),
            "failing_years": [f.year for f in failing],
        },
    )


def _rejects_result(facts: list[PartitionFacts]) -> AssetCheckResult:
    failing = [f for f in facts if f.rejects]
    return AssetCheckResult(
        check_name="no_rejected_rows",
        passed=not failing,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(
            f"{f.year}: {f.rejects} rows rejected, see {layout.bronze_rejects_key(f.table, f.year)}" for f in failing
        )
        or None,
        metadata={"rejects": sum(f.rejects for f in facts), "failing_years": [f.year for f in failing]},
    )


def _open_dates_result(facts: list[PartitionFacts]) -> AssetCheckResult:
    failing = [f for f in facts if f.outside_share > MAX_OUTSIDE_SHARE]
    return AssetCheckResult(
        check_name="open_dates_within_year",
        passed=not failing,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(
            f"{f.year}: {f.opened_outside_year} of {f.rows} cases ({f.outside_share:.1%}) opened in another year"
            for f in failing
        )
        or None,
        metadata={
            "opened_outside_year": sum(f.opened_outside_year for f in facts),
            "opened_missing": sum(f.opened_missing for f in facts),
            "max_share": MAX_OUTSIDE_SHARE,
            "share_by_year": MetadataValue.json({str(f.year): round(f.outside_share, 5) for f in facts}),
        },
    )


def build_bronze_checks(table: LakeTable) -> AssetChecksDefinition:
    asset = bronze_key(table)
    specs = [
        AssetCheckSpec(
            "case_id_present_and_unique",
            asset=asset,
            description="Every row has a case id and no id appears twice within the year.",
        ),
        AssetCheckSpec(
            "rows_reconcile_with_raw",
            asset=asset,
            description="Bronze rows plus rejected rows equal the data rows of the raw file.",
        ),
        AssetCheckSpec(
            "no_rejected_rows",
            asset=asset,
            description="Warns when rows could not be parsed; they are kept, with reasons, in _rejects.csv.",
        ),
        AssetCheckSpec(
            "open_dates_within_year",
            asset=asset,
            description=f"At most {MAX_OUTSIDE_SHARE:.0%} of cases opened outside the partition's year (warns).",
        ),
    ]

    @multi_asset_check(specs=specs, name=f"bronze_{table.name}_checks")
    def bronze_checks(context: AssetCheckExecutionContext, storage: LakeStorageResource) -> Iterator[AssetCheckResult]:
        raw_store, lake_store = storage.raw_zone(), storage.lake_zone()
        partitioned = context.has_partition_key or context.has_partition_key_range
        years = [int(key) for key in context.partition_keys] if partitioned else bronze_years(lake_store, table)
        context.log.info(f"checking {table.name} bronze for {years}")
        facts = [partition_facts(raw_store, lake_store, table, year) for year in years]
        yield _ids_result(facts)
        yield _reconcile_result(facts)
        yield _rejects_result(facts)
        yield _open_dates_result(facts)

    return bronze_checks


BRONZE_CHECKS = [build_bronze_checks(table) for table in TABLES]
