"""Checks on bronze partitions, judged from one read of each year's id and open-date columns of the published year.

They run after every materialization that selects them (the default in the UI) and each on its own from the
asset's Checks tab. A run over several years judges each year: the failing years are in the description
and in `failing_years`, every year's figures in the `by_year` table. Dagster keeps one result per check and
run, not per partition, for range runs. Missing or repeated ids and rows that do not reconcile are blocking
errors; the same two are audits of the staged year before it is published (lake/zones/bronze_quality.py), so a
version that fails them is refused and never reaches readers, and these checks keep reporting on the year that
stays published.
"""

from collections.abc import Callable, Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    multi_asset_check,
)

from boston_lake.defs.keys import bronze_key
from boston_lake.defs.metadata import failing_years_metadata
from boston_lake.defs.resources import LakeStorageResource
from boston_lake.lake import layout
from boston_lake.lake.tables import TABLES, LakeTable
from boston_lake.lake.zones.bronze_quality import PartitionFacts, bronze_years, partition_facts

# Real yearly files carry a few cases across the boundary (a case opened late on Dec 31 in another
# time zone's clock); more than this share means the file is in the wrong year's slot.
MAX_OUTSIDE_SHARE = 0.01


def by_year(facts: list[PartitionFacts], **columns: Callable[[PartitionFacts], int | float | str]) -> MetadataValue:
    """One row per judged year: Dagster shows a check's result per run, so the per-year verdicts are a table."""
    schema = TableSchema(
        columns=[TableColumn("year", "int")]
        + [TableColumn(name, type(get(facts[0])).__name__ if facts else "str") for name, get in columns.items()]
    )
    return MetadataValue.table(
        [TableRecord({"year": f.year, **{name: get(f) for name, get in columns.items()}}) for f in facts], schema
    )


def _ids_result(facts: list[PartitionFacts]) -> AssetCheckResult:
    failing = [f for f in facts if f.null_ids or f.duplicate_ids]
    return AssetCheckResult(
        check_name="case_id_present_and_unique",
        passed=not failing,
        description="; ".join(
            f"{f.year}: {f.null_ids} rows without {f.id_column}, {f.duplicate_ids} ids repeated "
            f"(e.g. {f.duplicate_examples})"
            for f in failing
        )
        or None,
        metadata={
            "failing_years": failing_years_metadata([f.year for f in failing]),
            "by_year": by_year(facts, null_ids=lambda f: f.null_ids, duplicate_ids=lambda f: f.duplicate_ids),
        },
    )


def _reconcile_result(facts: list[PartitionFacts]) -> AssetCheckResult:
    """Judged on the published year against the raw file it was built from (recorded in its footer), so the check
    stays true of what readers see while raw holds a newer file that bronze has not published (or refused)."""
    failing = [f for f in facts if not f.reconciles]
    details = []
    for f in failing:
        if f.raw_data_rows is None:
            details.append(f"{f.year}: the raw partition has no manifest")
        else:
            details.append(
                f"{f.year}: {f.rows} rows + {f.rejects} rejects != {f.raw_data_rows} data rows in the raw file "
                "it was built from"
            )
    pending = [
        f"{f.year}: raw now holds another file ({(f.raw_sha256 or '')[:12]}) than the one bronze was built from "
        f"({f.built_from_sha256[:12]}); bronze keeps the published year until a build of it passes its audits"
        for f in facts
        if f.stale
    ]
    return AssetCheckResult(
        check_name="rows_reconcile_with_raw",
        passed=not failing,
        description="; ".join(details + pending) or None,
        metadata={
            "failing_years": failing_years_metadata([f.year for f in failing]),
            "by_year": by_year(
                facts,
                bronze_rows=lambda f: f.rows,
                rejects=lambda f: f.rejects,
                raw_data_rows=lambda f: f.raw_data_rows if f.raw_data_rows is not None else -1,
            ),
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
        metadata={
            "failing_years": failing_years_metadata([f.year for f in failing]),
            "by_year": by_year(facts, rejects=lambda f: f.rejects),
        },
    )


def _has_rows_result(facts: list[PartitionFacts]) -> AssetCheckResult:
    failing = [f for f in facts if f.emptiness]
    return AssetCheckResult(
        check_name="year_has_rows",
        passed=not failing,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(f"{f.year}: 0 rows: {f.emptiness}" for f in failing) or None,
        metadata={
            "failing_years": failing_years_metadata([f.year for f in failing]),
            "by_year": by_year(facts, rows=lambda f: f.rows),
        },
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
            "failing_years": failing_years_metadata([f.year for f in failing]),
            "max_share": MAX_OUTSIDE_SHARE,
            "by_year": by_year(
                facts,
                opened_outside_year=lambda f: f.opened_outside_year,
                opened_missing=lambda f: f.opened_missing,
                share=lambda f: round(f.outside_share, 5),
            ),
        },
    )


RESULTS = {
    "case_id_present_and_unique": _ids_result,
    "rows_reconcile_with_raw": _reconcile_result,
    "no_rejected_rows": _rejects_result,
    "year_has_rows": _has_rows_result,
    "open_dates_within_year": _open_dates_result,
}


def build_bronze_checks(table: LakeTable) -> AssetChecksDefinition:
    asset = bronze_key(table)
    # Blocking ERROR checks fail the run that built the year, which then names the year and the reason.
    specs = [
        AssetCheckSpec(
            "case_id_present_and_unique",
            asset=asset,
            blocking=True,
            description="Every row has a case id and no id appears twice within the year.",
        ),
        AssetCheckSpec(
            "rows_reconcile_with_raw",
            asset=asset,
            blocking=True,
            description="Bronze rows plus rejected rows equal the data rows of the raw file the year was built from.",
        ),
        AssetCheckSpec(
            "no_rejected_rows",
            asset=asset,
            description="Warns when rows could not be parsed; they are kept, with reasons, in _meta/…/_rejects.csv.",
        ),
        AssetCheckSpec(
            "year_has_rows",
            asset=asset,
            description="Warns when a year holds no rows: a header-only source file is loud, not a green 0.",
        ),
        AssetCheckSpec(
            "open_dates_within_year",
            asset=asset,
            description=f"At most {MAX_OUTSIDE_SHARE:.0%} of cases opened outside the partition's year (warns).",
        ),
    ]

    # can_subset: each check can run on its own from the UI's Checks tab; the facts are read once either way.
    @multi_asset_check(specs=specs, name=f"bronze_{table.name}_checks", can_subset=True)
    def bronze_checks(context: AssetCheckExecutionContext, storage: LakeStorageResource) -> Iterator[AssetCheckResult]:
        raw_store, lake_store = storage.raw_zone(), storage.lake_zone()
        partitioned = context.has_partition_key or context.has_partition_key_range
        years = [int(key) for key in context.partition_keys] if partitioned else bronze_years(lake_store, table)
        context.log.info(f"checking {table.name} bronze for {years}")
        facts = [partition_facts(raw_store, lake_store, table, year) for year in years]
        for check_key in sorted(context.selected_asset_check_keys, key=lambda key: key.name):
            yield RESULTS[check_key.name](facts)

    return bronze_checks


BRONZE_CHECKS = [build_bronze_checks(table) for table in TABLES]
