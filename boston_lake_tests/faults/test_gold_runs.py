"""A gold run that fails or is canceled is requested again, a bounded number of times, and the tick says why:
declarative automation alone requests a gold year once per silver update and forgets it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetMaterialization,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    build_sensor_context,
    evaluate_automation_conditions,
)

from boston_lake.defs.automation import ATTEMPT, LANDING, REQUESTED_BY
from boston_lake.defs.gold.assets import GOLD_AUTOMATION, GOLD_JOB, GOLD_KEYS
from boston_lake.defs.gold.sensors import RETRY_SENSOR_NAME
from boston_lake.defs.keys import SILVER_KEY
from boston_lake.lake import layout
from boston_lake.lake.zones.silver.model import SILVER_TABLE, SILVER_ZONE
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.support.silver_samples import write_silver_samples

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
YEAR = "2025"


def automation_requests(defs: Definitions, instance: DagsterInstance, cursor: Any) -> tuple[list[str], Any]:
    """The gold years declarative automation requests on this evaluation (the same for every gold table)."""
    evaluation = evaluate_automation_conditions(defs, instance, cursor=cursor)
    years = {key: sorted(evaluation.get_requested_partitions(key)) for key in GOLD_KEYS}
    assert len({tuple(found) for found in years.values()}) == 1, years
    return next(iter(years.values())), evaluation.cursor


def retry_tick(defs: Definitions, instance: DagsterInstance) -> Any:
    sensor = defs.resolve_sensor_def(RETRY_SENSOR_NAME)
    return sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs))


def run_gold(defs: Definitions, instance: DagsterInstance, tags: dict[str, str]) -> Any:
    return defs.resolve_job_def(GOLD_JOB.name).execute_in_process(
        instance=instance, tags=tags, run_config=QUIET, raise_on_error=False
    )


class HiddenSilverYear:
    """Silver's year out of gold's sight while a gold run reads it (a disk unmounted, a restore in progress)."""

    def __init__(self, home: Path):
        self.year = home / layout.table_prefix(SILVER_ZONE, SILVER_TABLE) / "data" / f"year={YEAR}"
        self.away = home / "away"

    def __enter__(self) -> None:
        self.year.rename(self.away)

    def __exit__(self, *_: object) -> None:
        self.away.rename(self.year)


@fault(
    "crash",
    "a gold run that automation launched fails (its silver year unreadable), and a retry is canceled in the queue",
    "requested again by `retry_undone_gold`, at most 3 runs per silver update, the tick naming the run and how it "
    "ended; then given up, saying so on every tick; the next silver update builds the year",
    "n/a",
)
@pytest.mark.slow  # builds silver, then runs gold four times
def test_a_failed_or_canceled_gold_run_is_requested_again_then_given_up(
    local_defs: Definitions, dagster_instance: DagsterInstance, lake_home: Path
) -> None:
    write_silver_samples(lake_home)
    _, cursor = automation_requests(local_defs, dagster_instance, None)  # the sensor's first tick: nothing yet
    dagster_instance.report_runless_asset_event(AssetMaterialization(SILVER_KEY, partition=YEAR))
    requested, cursor = automation_requests(local_defs, dagster_instance, cursor)
    assert requested == [YEAR]
    automation_tags = {**GOLD_AUTOMATION.run_tags, "dagster/partition": YEAR}  # as the automation sensor tags it
    with HiddenSilverYear(lake_home):
        first = run_gold(local_defs, dagster_instance, automation_tags)
    assert not first.success
    requested, cursor = automation_requests(local_defs, dagster_instance, cursor)
    assert requested == []  # automation has handled this silver update: it will not ask again

    (again,) = retry_tick(local_defs, dagster_instance).run_requests
    assert again.job_name == GOLD_JOB.name and again.tags["dagster/partition"] == YEAR
    assert again.tags[ATTEMPT] == "2" and again.tags[REQUESTED_BY] == RETRY_SENSOR_NAME
    canceled = DagsterRun(job_name=GOLD_JOB.name, run_id=str(uuid.uuid4()), tags=dict(again.tags))
    dagster_instance.add_run(canceled)
    dagster_instance.report_run_canceled(canceled)  # someone cancels it while it waits in the queue

    (third,) = retry_tick(local_defs, dagster_instance).run_requests
    assert third.tags[ATTEMPT] == "3" and third.tags[LANDING] == again.tags[LANDING]
    assert third.run_key != again.run_key  # the daemon would skip a run key it has launched before
    with HiddenSilverYear(lake_home):
        last = run_gold(local_defs, dagster_instance, dict(third.tags))
    assert not last.success
    assert [dagster_instance.get_run_by_id(run).status for run in (first.run_id, canceled.run_id, last.run_id)] == [
        DagsterRunStatus.FAILURE,
        DagsterRunStatus.CANCELED,
        DagsterRunStatus.FAILURE,
    ]

    given_up = retry_tick(local_defs, dagster_instance)
    assert given_up.run_requests == []
    assert given_up.skip_message == (
        f"gold years [{YEAR}] given up after 3 attempts, the last run {last.run_id[:8]} ended FAILURE: not "
        "requested again until they land changed again, or someone materializes them"
    )

    dagster_instance.report_runless_asset_event(AssetMaterialization(SILVER_KEY, partition=YEAR))  # silver again
    requested, cursor = automation_requests(local_defs, dagster_instance, cursor)
    assert requested == [YEAR]
    assert run_gold(local_defs, dagster_instance, automation_tags).success
    assert retry_tick(local_defs, dagster_instance).skip_message == (
        "no gold run ended failed or canceled without being built since"
    )


@fault(
    "crash",
    "a gold run that automation launched fails once",
    "requested again on the sensor's next tick, which names the failed run; the retry builds the year",
    "n/a",
)
@pytest.mark.slow  # builds silver, then runs gold twice
def test_a_gold_run_that_failed_once_is_built_by_its_retry(
    local_defs: Definitions, dagster_instance: DagsterInstance, lake_home: Path, capfd: Any
) -> None:
    write_silver_samples(lake_home)
    dagster_instance.report_runless_asset_event(AssetMaterialization(SILVER_KEY, partition=YEAR))
    with HiddenSilverYear(lake_home):
        failed = run_gold(local_defs, dagster_instance, {**GOLD_AUTOMATION.run_tags, "dagster/partition": YEAR})
    assert not failed.success
    capfd.readouterr()
    (again,) = retry_tick(local_defs, dagster_instance).run_requests
    said = f"gold years [{YEAR}] requested again (attempt 2 of 3): run {failed.run_id[:8]} ended FAILURE"
    assert said in capfd.readouterr().err  # the tick's log
    assert run_gold(local_defs, dagster_instance, dict(again.tags)).success
    assert retry_tick(local_defs, dagster_instance).run_requests == []
