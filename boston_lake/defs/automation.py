"""What the sensors of every domain read from the instance: the bronze years that landed since a cursor, and
the runs they requested that ended without building their years.

A sensor reads every bronze materialization record since its cursor (not just the newest event, which is all
`@asset_sensor` sees: dagster#32853), so years that land together, or from one single-run backfill, are all
seen. A materialization that changed nothing (its `changed` metadata is false) is told apart from one that did.

A sensor's cursor moves on when it requests a run, so the cursor alone would forget a run that then fails or is
canceled. Every run a sensor requests carries tags saying which sensor, which landing (the storage id of the
newest bronze materialization it follows) and which attempt; from those runs, not from memory, `retries` finds
the years whose latest requested run ended FAILURE or CANCELED, requests them again up to MAX_ATTEMPTS runs per
year and landing, and then gives up, saying so on every tick until the year is built or lands again.
"""

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetRecordsFilter,
    BoolMetadataValue,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    EventLogRecord,
    RunRecord,
    RunsFilter,
)

from boston_lake.defs.keys import RANGE_END, RANGE_START, bronze_key, partition_tags
from boston_lake.defs.metadata import failing_years_of
from boston_lake.lake.tables import LakeTable

IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
PAGE = 1000
# Tags on every run a sensor requests: the sensor, the landing it follows, and which attempt at it the run is.
REQUESTED_BY = "boston_lake/requested_by"
LANDING = "boston_lake/landing"
ATTEMPT = "boston_lake/attempt"
MAX_ATTEMPTS = 3  # runs per year and landing: the first request and two retries
UNDONE = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
RECENT_RUNS = 500  # a sensor's newest runs read per tick; attempts are counted among them


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


def year_ranges(years: Iterable[int]) -> str:
    """The years as a person reads them: [2011, 2012, 2013, 2015] -> '2011-2013, 2015'."""
    return ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in contiguous_blocks(years))


# -- runs the sensors requested, and the years to request again ---------------------------------------------


def request_tags(sensor: str, first: int, last: int, landing: int, attempt: int = 1) -> dict[str, str]:
    """The tags of a run `sensor` requests for years `first`..`last`, following the landing `landing`."""
    return {**partition_tags(first, last), REQUESTED_BY: sensor, LANDING: str(landing), ATTEMPT: str(attempt)}


def tagged_years(tags: Mapping[str, str]) -> list[int]:
    """The years a run targets, read back from its partition or range tags (keys.partition_tags)."""
    if "dagster/partition" in tags:
        return [int(tags["dagster/partition"])]
    if RANGE_START in tags and RANGE_END in tags:
        return list(range(int(tags[RANGE_START]), int(tags[RANGE_END]) + 1))
    return []


@dataclass(frozen=True)
class Retry:
    """One run to request again: years `first`..`last` of one landing, as attempt `attempt`."""

    first: int
    last: int
    landing: int
    attempt: int


@dataclass(frozen=True)
class Retries:
    requests: list[Retry]
    notes: list[str]  # which years are requested again and why, and which are given up


def _landing(run: DagsterRun) -> int | None:
    text = run.tags.get(LANDING, "")
    return int(text) if text.isdigit() else None


def retries(
    instance: DagsterInstance,
    sensors: str | Sequence[str],
    built: Sequence[AssetKey],
    *,
    scope: Mapping[str, str] | None = None,
    requested_now: Iterable[int] = (),
    label: str = "",
    landing_of: Callable[[RunRecord, int], int | None] | None = None,
) -> Retries:
    """The years whose latest run requested by `sensors` (among their runs carrying the `scope` tags) ended
    FAILURE or CANCELED and whose assets `built` were not all materialized since that run's landing.

    Each is requested again while fewer than MAX_ATTEMPTS of the sensors' runs for that landing covered it;
    after that it is given up, and a note says so on every tick until the year is built or lands again. Years in
    `requested_now` are left out: the new request of a newer landing covers them. `label` starts every note.
    `landing_of(run, year)` finds the landing of a run that has no LANDING tag (one automation launched).
    """
    latest: dict[int, tuple[DagsterRun, int]] = {}
    attempts: Counter[tuple[int, int]] = Counter()
    requested_by = sensors if isinstance(sensors, str) else list(sensors)
    records = instance.get_run_records(RunsFilter(tags={REQUESTED_BY: requested_by, **(scope or {})}), RECENT_RUNS)
    for record in records:  # newest first
        run = record.dagster_run
        for year in tagged_years(run.tags):
            landing = _landing(run)
            if landing is None and landing_of is not None:
                landing = landing_of(record, year)
            if landing is None:
                continue
            latest.setdefault(year, (run, landing))
            attempts[year, landing] += 1
    skip = set(requested_now)
    undone = {year: found for year, found in latest.items() if found[0].status in UNDONE and year not in skip}
    if not undone:
        return Retries([], [])
    partitions = {str(year) for year in undone}
    latest_by_key = [
        instance.get_latest_storage_id_by_partition(key, DagsterEventType.ASSET_MATERIALIZATION, partitions=partitions)
        for key in built
    ]
    materialized = {partition: min(newest.get(partition, 0) for newest in latest_by_key) for partition in partitions}
    again: dict[tuple[int, int], list[int]] = defaultdict(list)  # (landing, attempt) -> years
    retried: dict[tuple[str, int], list[int]] = defaultdict(list)  # (why, attempt) -> years
    given_up: dict[str, list[int]] = defaultdict(list)  # why -> years
    for year, (run, landing) in sorted(undone.items()):
        if materialized.get(str(year), 0) > landing:
            continue  # built since, by another run
        why = f"run {run.run_id[:8]} ended {run.status.value}"
        made = attempts[year, landing]
        if made < MAX_ATTEMPTS:
            again[landing, made + 1].append(year)
            retried[why, made + 1].append(year)
        else:
            given_up[why].append(year)
    requests = [
        Retry(first, last, landing, attempt)
        for (landing, attempt), years in sorted(again.items())
        for first, last in contiguous_blocks(years)
    ]
    notes = [
        f"{label}years {years} requested again (attempt {attempt} of {MAX_ATTEMPTS}): {why}"
        for (why, attempt), years in retried.items()
    ]
    notes += [
        f"{label}years {years} given up after {MAX_ATTEMPTS} attempts, the last {why}: not requested again until "
        "they land changed again, or someone materializes them"
        for why, years in given_up.items()
    ]
    return Retries(requests, notes)
