"""Yearly partitions: one per calendar year of a case's open date, the running year included."""

from __future__ import annotations

from dagster import AssetExecutionContext, TimeWindowPartitionsDefinition

from boston_lake.lake.tables import LEGACY_REQUESTS, NEW_SYSTEM_REQUESTS, LakeTable

TIMEZONE = "America/New_York"


def yearly_partitions(first_year: int) -> TimeWindowPartitionsDefinition:
    # end_offset=1 adds the year in progress; without it the current year would only appear next January.
    return TimeWindowPartitionsDefinition(
        start=str(first_year), fmt="%Y", cron_schedule="0 0 1 1 *", end_offset=1, timezone=TIMEZONE
    )


PARTITIONS_BY_TABLE = {
    table.name: yearly_partitions(table.first_year) for table in (LEGACY_REQUESTS, NEW_SYSTEM_REQUESTS)
}


def partitions_for(table: LakeTable) -> TimeWindowPartitionsDefinition:
    return PARTITIONS_BY_TABLE[table.name]


def all_years(table: LakeTable) -> list[int]:
    return [int(key) for key in partitions_for(table).get_partition_keys()]


def run_years(context: AssetExecutionContext) -> list[int]:
    """The years of this run, whether it targets one partition or a single-run backfill's range."""
    return [int(key) for key in context.partition_keys]


# Silver and gold years are the legacy table's years (2011 to the running year); gold year Y reads silver year Y.
SILVER_PARTITIONS = partitions_for(LEGACY_REQUESTS)
