"""What the sensors of every domain read from the instance: the bronze years that landed since a cursor.

A sensor reads every bronze materialization record since its cursor (not just the newest event, which is all
`@asset_sensor` sees: dagster#32853), so years that land together, or from one single-run backfill, are all
seen. A materialization that changed nothing (its `changed` metadata is false) is told apart from one that did.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from dagster import (
    AssetCheckEvaluation,
    AssetRecordsFilter,
    BoolMetadataValue,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    EventLogRecord,
)

from boston_lake.defs.keys import bronze_key
from boston_lake.defs.metadata import failing_years_of
from boston_lake.lake.tables import LakeTable

IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
PAGE = 1000


@dataclass(frozen=True)
class Landed:
    """The bronze materializations of one table after a cursor."""

    changed: dict[int, int]  # year -> storage id of its newest materialization that rewrote the bronze object
    unchanged: list[int]  # years materialized only without a change (the same raw file: nothing rewritten)
    blocked: dict[int, str]  # changed years whose run failed a blocking check on them -> which check, which run
    newest_storage_id: int | None  # of any record: the cursor moves past unchanged ones too


def rewrote_bronze(record: EventLogRecord) -> bool:
    """False only when the materialization says it changed nothing; a record without the flag counts as changed."""
    materialization = record.asset_materialization
    flag = materialization.metadata.get("changed") if materialization else None
    return not isinstance(flag, BoolMetadataValue) or flag.value is not False


def landed_years(instance: DagsterInstance, table: LakeTable, after_storage_id: int | None) -> Landed:
    """The bronze years materialized after the cursor. A changed year that failed a blocking check in the run
    that built it is `blocked`, not `changed`: its data is stored, but nothing downstream may take it up."""
    changed: dict[int, EventLogRecord] = {}
    unchanged: set[int] = set()
    newest = after_storage_id
    cursor = None
    while True:
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=bronze_key(table), after_storage_id=after_storage_id),
            limit=PAGE,
            cursor=cursor,
            ascending=True,
        )
        for record in result.records:
            if record.partition_key is not None:
                year = int(record.partition_key)
                if rewrote_bronze(record):
                    changed[year] = record
                else:
                    unchanged.add(year)
            newest = max(newest or 0, record.storage_id)
        if not result.has_more:
            break
        cursor = result.cursor
    blocked = failed_blocking_checks(instance, table, changed)
    return Landed(
        {year: record.storage_id for year, record in changed.items() if year not in blocked},
        sorted(unchanged - changed.keys()),
        blocked,
        newest,
    )


def failed_blocking_checks(
    instance: DagsterInstance, table: LakeTable, changed: dict[int, EventLogRecord]
) -> dict[int, str]:
    """The years that a blocking bronze check failed in the run that built them, with the check and the run."""
    failed: dict[int, str] = {}
    for run_id in {record.run_id for record in changed.values()}:
        evaluations = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
        for entry in evaluations:
            event = entry.event_log_entry.dagster_event
            evaluation = event.event_specific_data if event else None
            if not isinstance(evaluation, AssetCheckEvaluation) or evaluation.asset_key != bronze_key(table):
                continue
            if evaluation.passed or not evaluation.blocking:
                continue
            for year in failing_years_of(evaluation.metadata):
                if year in changed and changed[year].run_id == run_id:
                    failed[year] = f"blocking check {evaluation.check_name} failed in run {run_id[:8]}"
    return failed


def contiguous_blocks(years: Iterable[int]) -> list[tuple[int, int]]:
    blocks: list[list[int]] = []
    for year in sorted(set(years)):
        if blocks and year == blocks[-1][1] + 1:
            blocks[-1][1] = year
        else:
            blocks.append([year, year])
    return [(first, last) for first, last in blocks]
