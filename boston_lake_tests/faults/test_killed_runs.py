"""Runs killed where Dagster keeps state for them: the crawler pool's slot, and the demo's years. The lake keeps
itself running: a dead run's slot is freed by the daemon, `status` says who holds a slot and who frees it, and a
re-run of an interrupted demo builds every year it left missing."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from boston_lake.defs.keys import CRAWLER_POOL
from boston_lake.lake.catalog.local import LocalCatalog
from boston_lake.lake.tables import DATABASE
from boston_lake.sample_portal.server import copy_sample_data
from boston_lake_tests.faults.conftest import REPO, Lake
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.support.dagster_server import DagsterServer, _serve

LAUNCH_RUN = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
ENDED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
WORKER = re.compile(r"Executing steps in process \(pid: (\d+)\)")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DagsterServer]:
    """`dagster dev` (webserver, daemon, code server) on the shipped .dagster_home/dagster.yaml, with one value
    lowered so the test is short: the daemon frees a dead run's slots 1 s after the run ended instead of 60 s.
    Everything else (run monitoring, its 30 s poll, the pool's limit) is the shipped instance."""
    from boston_lake_tests.support.portal import TestPortal

    shipped = (REPO / ".dagster_home" / "dagster.yaml").read_text()
    quick = re.sub(r"(?m)^(\s+free_slots_after_run_end_seconds:) \d+$", r"\1 1", shipped)
    with TestPortal(copy_sample_data(tmp_path / "portal_data")) as portal:
        yield from _serve(portal, tmp_path, instance_config=quick)


def launch_crawl(server: DagsterServer, year: int) -> str:
    launched = server.graphql(
        LAUNCH_RUN,
        params={
            "selector": {
                "repositoryLocationName": "boston_lake",
                "repositoryName": "__repository__",
                "pipelineName": "crawl_legacy_requests",
            },
            "mode": "default",
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": str(year)}]},
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def slot_holders(instance: DagsterInstance) -> set[str]:
    return {slot.run_id for slot in instance.event_log_storage.get_concurrency_info(CRAWLER_POOL).claimed_slots}


def worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The process that executes the run's steps, as the in-process executor reports it."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        found = WORKER.search(entry.message)
        if found:
            return int(found.group(1))
    return None


def status_of(instance: DagsterInstance, run_id: str) -> DagsterRunStatus | None:
    run = instance.get_run_by_id(run_id)
    return run.status if run and run.status in ENDED else None


@pytest.mark.ui
@pytest.mark.timeout(600)
@fault(
    "crash",
    "SIGKILL of a crawl while it holds the crawler pool's slot (under the daemon)",
    "run monitoring fails the run, the daemon frees its slot, and the next crawl gets the slot and completes",
    rows_lost="n/a",
)
def test_a_run_killed_holding_the_crawler_slot_does_not_jam_the_pool(daemon: DagsterServer) -> None:
    Lake(daemon.lake_home, daemon.portal).ingest(2022)  # bronze 2022 on disk, to crawl
    catalog = daemon.lake_home / "catalog" / "catalog.sqlite"
    LocalCatalog(catalog).create_database(DATABASE)
    # A writer holds the catalog, so the crawl waits inside its step, holding the pool's slot, until it is killed.
    writer = sqlite3.connect(catalog, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    with DagsterInstance.from_config(str(daemon.dagster_home)) as instance:
        killed = launch_crawl(daemon, 2022)
        daemon.wait_for(lambda: killed in slot_holders(instance), 240, f"crawl {killed} to take the slot", 0.2)
        os.kill(daemon.wait_for(lambda: worker_pid(instance, killed), 60, f"the worker of {killed}"), signal.SIGKILL)
        writer.execute("ROLLBACK")
        writer.close()

        later = launch_crawl(daemon, 2022)
        assert daemon.wait_for(lambda: status_of(instance, killed), 240, f"killed crawl {killed} to end") == (
            DagsterRunStatus.FAILURE
        )
        # Without the daemon freeing the dead run's slot, `later` waits in the queue for ever.
        assert daemon.wait_for(lambda: status_of(instance, later), 240, f"later crawl {later} to end") == (
            DagsterRunStatus.SUCCESS
        )
        assert slot_holders(instance) == set()
