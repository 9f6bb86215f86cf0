"""Silver's checks, judged per year from one read of the year and its neighbours: ids unique, every case in its
year, and the night trough where Boston's night is (the evidence that times were converted right). The silver
asset's step judges them (assets.py), after its build or alone."""

from collections.abc import Callable, Collection, Iterator

from dagster import AssetCheckResult, AssetCheckSpec, MetadataValue

from boston_lake.defs.keys import SILVER_KEY
from boston_lake.lake.catalog.iceberg import IcebergTables
from boston_lake.lake.zones.silver.quality import NIGHT_HOURS, SilverFacts, silver_facts, silver_years

__all__ = ["SILVER_CHECK_SPECS", "check_results", "silver_years"]


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


def _withdrawn_result(facts: list[SilverFacts]) -> AssetCheckResult:
    """A report, not a verdict: the source withdrawing cases is its right; silver keeps them, marked."""
    withdrawing = [f for f in facts if f.withdrawn]
    return AssetCheckResult(
        check_name="withdrawn_cases_reported",
        passed=True,
        description="; ".join(
            f"{f.year}: {f.withdrawn} cases no bronze file lists any more (e.g. {f.withdrawn_examples})"
            for f in withdrawing
        )
        or "no withdrawn cases",
        metadata={
            "withdrawn_by_year": MetadataValue.json({str(f.year): f.withdrawn for f in facts}),
            "withdrawn": sum(f.withdrawn for f in facts),
        },
    )


RESULTS: dict[str, Callable[[list[SilverFacts]], AssetCheckResult]] = {
    "case_id_unique": _unique_result,
    "bronze_cases_placed_once": _placed_result,
    "local_hour_trough_at_night": _trough_result,
    "withdrawn_cases_reported": _withdrawn_result,
}


SILVER_CHECK_SPECS = [
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
    AssetCheckSpec(
        "withdrawn_cases_reported",
        asset=SILVER_KEY,
        description="How many cases per year the source withdrew (kept in silver with withdrawn_at), with examples.",
    ),
]


def check_results(tables: IcebergTables, years: list[int], selected: Collection[str]) -> Iterator[AssetCheckResult]:
    """The `selected` checks' results over `years`, from one read of each year."""
    facts = silver_facts(tables, years)
    for name, result in RESULTS.items():
        if name in selected:
            yield result(facts)
