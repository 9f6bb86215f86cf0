"""What the Dagster UI shows, read through the webserver's GraphQL API with the daemon launching the runs."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from boston_lake.sample_portal.server import PortalHandler
from boston_lake_tests.support.dagster_server import REPOSITORY, DagsterServer, partition_status
from boston_lake_tests.support.portal import status

OBSERVATIONS = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetObservations { partition description metadataEntries { label ... on BoolMetadataEntry { boolValue } } }
    }
  }
}
"""


def backfill(server: DagsterServer, years: list[str]) -> str:
    """Launch a backfill of raw and bronze legacy_requests as the UI's "Launch backfill" does; its final status."""
    return server.backfill(
        {
            "partitionNames": years,
            "assetSelection": [{"path": ["raw", "legacy_requests"]}, {"path": ["bronze", "legacy_requests"]}],
        },
        timeout=300,
    )


def test_a_partly_failed_backfill_shows_the_stored_years_materialized_and_carries_them_downstream(
    dagster_server: DagsterServer,
) -> None:
    dagster_server.portal.faults.extend([status(403)])  # the download of 2012 is refused; 2013 downloads
    assert backfill(dagster_server, ["2012", "2013"]) in {"COMPLETED_FAILED", "FAILED"}
    raw = partition_status(dagster_server, "raw", "legacy_requests")
    assert {year: raw[year] for year in ("2012", "2013")} == {"2012": "FAILED", "2013": "MATERIALIZED"}
    # Bronze ran for the year whose raw partition was stored, and only for it.
    assert partition_status(dagster_server, "bronze", "legacy_requests").keys() - {"2014", "2015"} == {"2013"}
    assert (dagster_server.lake_home / "bronze/boston311/legacy_requests/year=2013/part-00000.parquet").is_file()


def test_a_year_the_portal_does_not_publish_stays_missing_never_failed(dagster_server: DagsterServer) -> None:
    dagster_server.portal.withdraw_legacy_years(2014)
    backfill(dagster_server, ["2014", "2015"])
    raw = partition_status(dagster_server, "raw", "legacy_requests")
    assert "2014" not in raw and raw["2015"] == "MATERIALIZED"  # missing: a later run stores it once published
    node = dagster_server.graphql(OBSERVATIONS, key={"path": ["raw", "legacy_requests"]})["assetNodeOrError"]
    (observed,) = node["assetObservations"]
    assert observed["partition"] == "2014" and "does not publish legacy_requests 2014" in observed["description"]
    assert {"label": "published", "boolValue": False} in observed["metadataEntries"]
    bronze = partition_status(dagster_server, "bronze", "legacy_requests")
    assert "2014" not in bronze and bronze["2015"] == "MATERIALIZED"


ALONE_RUNS = """
query {
  runsOrError(filter: {tags: [{key: "boston_lake/requested_by", value: "retry_raw_years_alone"}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""


def refused_download(year: int) -> Callable[[PortalHandler, Path], bool]:
    """A fault that answers 403 to the download of `year`'s file and lets any other download through."""
    refuse = status(403)
    return lambda handler, path: str(year) in path.name and refuse(handler, path)


def test_a_year_the_portal_does_not_publish_stays_missing_when_another_year_of_the_run_fails(
    dagster_server: DagsterServer,
) -> None:
    dagster_server.portal.withdraw_legacy_years(2017)
    # 2016 is refused in the backfill's run (2018 downloads) and again in the run that retries it alone.
    dagster_server.portal.faults.extend([refused_download(2016)] * 3)
    # Its raw run succeeds; whether the backfill ends after the retry of 2016 failed (and so failed) is a race.
    assert backfill(dagster_server, ["2016", "2017", "2018"]) in {"COMPLETED_SUCCESS", "COMPLETED_FAILED"}

    def alone() -> dict | None:
        runs = dagster_server.graphql(ALONE_RUNS)["runsOrError"]["results"]
        return next((run for run in runs if run["status"] in {"SUCCESS", "FAILURE", "CANCELED"}), None)

    run = dagster_server.wait_for(alone, timeout=300, what="the run that retries 2016 alone")
    assert run["status"] == "FAILURE" and {"key": "dagster/partition", "value": "2016"} in run["tags"]
    raw = partition_status(dagster_server, "raw", "legacy_requests")
    assert raw["2016"] == "FAILED" and "2017" not in raw and raw["2018"] == "MATERIALIZED"
    bronze = partition_status(dagster_server, "bronze", "legacy_requests")
    # The retry is the ingest job (raw, then bronze): bronze 2016 fails with the raw year it could not read.
    assert {year: bronze[year] for year in bronze.keys() & {"2016", "2017", "2018"}} == {
        "2016": "FAILED",
        "2018": "MATERIALIZED",
    }
    node = dagster_server.graphql(OBSERVATIONS, key={"path": ["raw", "legacy_requests"]})["assetNodeOrError"]
    (failed,) = [o["description"] for o in node["assetObservations"] if o["partition"] == "2016"]
    assert failed.startswith(
        "raw/legacy_requests 2016 failed, requested again in a run of its own so that 2017, with nothing to store, "
        "is not marked failed: "
    )


CHECKS = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetChecksOrError { ... on AssetChecks { checks { name blocking canExecuteIndividually } } }
    }
  }
}
"""

RUN = """
query ($id: ID!) {
  runOrError(runId: $id) {
    ... on Run { status stepKeysToExecute }
  }
}
"""

CHECK_EXECUTIONS = """
query ($key: AssetKeyInput!, $name: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $name, limit: 1) {
    runId status evaluation { success description metadataEntries { label ... on TextMetadataEntry { text } } }
  }
}
"""


def runs_alone(server: DagsterServer, key: dict[str, list[str]], check: str, others: list[str]) -> None:
    """Execute `check` as the Checks tab's "Execute" sends it (the implicit asset job with the one check selected,
    no asset): it succeeds, and none of `others` runs."""
    run_id = server.launch_run(
        {"pipelineName": "__ASSET_JOB", "assetSelection": [], "assetCheckSelection": [{"assetKey": key, "name": check}]}
    )

    def ended() -> str | None:
        status = server.graphql(RUN, id=run_id)["runOrError"]["status"]
        return status if status in {"SUCCESS", "FAILURE", "CANCELED"} else None

    assert server.wait_for(ended, timeout=180, what=f"check run {run_id}") == "SUCCESS"
    execution = server.graphql(CHECK_EXECUTIONS, key=key, name=check)["assetCheckExecutions"][0]
    assert execution["runId"] == run_id and execution["status"] == "SUCCEEDED"
    for other in others:
        executions = server.graphql(CHECK_EXECUTIONS, key=key, name=other)["assetCheckExecutions"]
        assert all(e["runId"] != run_id for e in executions), other  # the others did not run


def test_every_bronze_check_runs_alone_from_the_checks_tab(dagster_server: DagsterServer) -> None:
    bronze = {"path": ["bronze", "legacy_requests"]}
    checks = dagster_server.graphql(CHECKS, key=bronze)["assetNodeOrError"]["assetChecksOrError"]["checks"]
    assert {c["name"]: (c["blocking"], c["canExecuteIndividually"]) for c in checks} == {
        "case_id_present_and_unique": (True, "CAN_EXECUTE"),
        "rows_reconcile_with_raw": (True, "CAN_EXECUTE"),
        "no_rejected_rows": (False, "CAN_EXECUTE"),
        "year_has_rows": (False, "CAN_EXECUTE"),
        "open_dates_within_year": (False, "CAN_EXECUTE"),
    }
    runs_alone(dagster_server, bronze, "no_rejected_rows", ["case_id_present_and_unique"])


def test_every_silver_check_runs_alone_from_the_checks_tab(dagster_server: DagsterServer) -> None:
    silver = {"path": ["silver", "service_requests"]}
    checks = dagster_server.graphql(CHECKS, key=silver)["assetNodeOrError"]["assetChecksOrError"]["checks"]
    names = ["case_id_unique", "bronze_cases_placed_once", "local_hour_trough_at_night", "withdrawn_cases_reported"]
    assert {c["name"]: c["canExecuteIndividually"] for c in checks} == dict.fromkeys(names, "CAN_EXECUTE")
    runs_alone(dagster_server, silver, "local_hour_trough_at_night", names[:2])


SENSOR_TICKS = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor {
      sensorState { ticks(limit: 20, statuses: [SKIPPED]) { skipReason logEvents { events { message } } } }
    }
  }
}
"""


@pytest.mark.parametrize(
    "sensor", ["crawl_landed_bronze", "rebuild_silver_on_bronze_change", "retry_undone_gold", "retry_raw_years_alone"]
)
def test_a_skipped_sensor_tick_logs_its_reason_where_view_logs_shows_it(dagster_server: DagsterServer, sensor) -> None:
    selector = {**REPOSITORY, "sensorName": sensor}

    def logged_tick() -> tuple[str, list[str]] | None:
        state = dagster_server.graphql(SENSOR_TICKS, selector=selector)["sensorOrError"]["sensorState"]
        return next(
            (
                (tick["skipReason"], [event["message"] for event in tick["logEvents"]["events"]])
                for tick in state["ticks"]
                if tick["logEvents"]["events"]
            ),
            None,
        )

    reason, messages = dagster_server.wait_for(logged_tick, timeout=180, what=f"a skipped tick of {sensor} with logs")
    assert reason and messages == [reason]


def launch_ingest(server: DagsterServer, year: str) -> str:
    """Launch `ingest_legacy_requests` for one year as the UI's Materialize does; the run's id."""
    return server.launch_run({"pipelineName": "ingest_legacy_requests"}, {"dagster/partition": year})


GOLD_CHARTS = """
query ($key: AssetKeyInput!, $year: String!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(partitions: [$year], limit: 1) {
        metadataEntries { label ... on MarkdownMetadataEntry { mdStr } ... on TextMetadataEntry { text } }
      }
    }
  }
}
"""


@pytest.mark.timeout(1500)
def test_landed_bronze_reaches_silver_and_gold_by_the_sensors_and_gold_shows_its_charts(
    dagster_server: DagsterServer,
) -> None:
    """No one launches silver or gold: the daemon's sensors build them from legacy 2013 (landed by the backfill
    test above, or launched here when this test runs alone), and the charts are in gold's metadata in the UI."""
    if partition_status(dagster_server, "bronze", "legacy_requests").get("2013") != "MATERIALIZED":
        launch_ingest(dagster_server, "2013")

    def charts(year: str = "2013") -> str | None:
        asset = dagster_server.graphql(GOLD_CHARTS, key={"path": ["gold", "service_levels"]}, year=year)
        materializations = asset["assetOrError"].get("assetMaterializations") or []
        entries = {entry["label"]: entry for m in materializations for entry in m["metadataEntries"]}
        if "charts" not in entries:
            return None
        if "mdStr" in entries["charts"]:
            return entries["charts"]["mdStr"]
        # A run of several years draws its charts once, on its newest year; the others say which.
        newest = re.fullmatch(r"on the (\d{4}) materialization of the same run \(years .+\)", entries["charts"]["text"])
        assert newest, entries["charts"]["text"]
        return charts(newest.group(1))

    markdown = dagster_server.wait_for(charts, timeout=1200, what="gold/service_levels 2013 built by the sensors")
    assert "Median hours to close by neighborhood and year" in markdown
    assert "On-time share by department and year" in markdown
    assert markdown.count("(data:image/png;base64,") == 3  # cases per month, hours by neighborhood, on time
    assert partition_status(dagster_server, "silver", "service_requests").get("2013") == "MATERIALIZED"
    assert partition_status(dagster_server, "catalog", "legacy_requests").get("2013") == "MATERIALIZED"


def run_worker_pids(server: DagsterServer) -> list[int]:
    """Processes of `dagster dev` that execute a run: the code server starts each in a spawned process."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            in_group = os.getpgid(int(entry.name)) == server.process_group
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
        if in_group and b"multiprocessing.spawn" in command and b"spawn_main" in command:
            pids.append(int(entry.name))
    return pids


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_run_whose_worker_is_killed_ends_failed(dagster_server: DagsterServer) -> None:
    release = threading.Event()

    def hang(handler, path) -> bool:  # the download waits until the test lets it go
        release.wait(timeout=300)
        return False

    before = set(run_worker_pids(dagster_server))
    requests_before = len(dagster_server.portal.requests)  # the server is shared: earlier tests downloaded too
    dagster_server.portal.faults.append(hang)
    try:
        run_id = launch_ingest(dagster_server, "2022")
        dagster_server.wait_for(
            lambda: any("/download/" in seen.path for seen in dagster_server.portal.requests[requests_before:]),
            timeout=180,
            what="the run to start its download",
        )

        def new_workers() -> list[int] | None:
            # Run workers, not the step processes they may have spawned in turn. The server is shared by the module:
            # a crawl the sensor launched after an earlier test may still be running, so every new worker is killed.
            started = set(run_worker_pids(dagster_server)) - before
            return [pid for pid in started if parent_pid(pid) not in started] or None

        for worker in dagster_server.wait_for(new_workers, timeout=60, what="the run worker"):
            os.kill(worker, signal.SIGKILL)

        def ended() -> str | None:
            status = dagster_server.graphql(RUN, id=run_id)["runOrError"]["status"]
            return status if status in {"SUCCESS", "FAILURE", "CANCELED"} else None

        assert dagster_server.wait_for(ended, timeout=180, what=f"killed run {run_id} to end") == "FAILURE"
    finally:
        release.set()


RESOURCE = """
query ($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    __typename
    ... on ResourceDetails {
      configFields { name description }
      configuredValues { key value type }
      nestedResources { name }
    }
    ... on PythonError { message }
  }
}
"""


def resource_details(server: DagsterServer, name: str) -> dict:
    selector = {**REPOSITORY, "resourceName": name}
    details = server.graphql(RESOURCE, selector=selector)["topLevelResourceDetailsOrError"]
    assert details["__typename"] == "ResourceDetails", details
    return details


def test_the_settings_page_shows_every_variable_with_its_value_and_where_it_came_from(
    dagster_server: DagsterServer,
) -> None:
    from boston_lake.lake.settings import VARIABLES

    details = resource_details(dagster_server, "settings")
    described = {field["name"]: field["description"] for field in details["configFields"]}
    assert set(described) == {variable.name.lower() for variable in VARIABLES}
    assert all(described[variable.name.lower()].startswith(variable.name) for variable in VARIABLES)
    values = {value["key"]: (value["type"], value["value"]) for value in details["configuredValues"]}
    # The server's environment sets these three: the page names the variables, not their values.
    for name in ("BOSTON_LAKE_TARGET", "BOSTON_LAKE_HOME", "BOSTON_LAKE_PORTAL_URL"):
        assert values[name.lower()] == ("ENV_VAR", name)
    # Unset ones show the default in force.
    assert values["boston_lake_duckdb_memory_limit"] == ("VALUE", '"192MB"')
    assert values["boston_lake_raw_bucket"] == ("VALUE", "null")  # an AWS setting, unset on the local target
    # The resources that read the settings say so.
    for resource in ("portal", "storage"):
        assert "settings" in {
            nested["name"] for nested in resource_details(dagster_server, resource)["nestedResources"]
        }
