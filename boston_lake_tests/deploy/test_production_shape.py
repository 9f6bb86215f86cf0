"""The production shape, for real and without Docker: a PostgreSQL server, the code location's gRPC server
started by the Dockerfile's entry point, and the webserver and daemon started by docker-compose.yml's
commands, all with deploy/dagster.yaml and deploy/workspace.yaml. Runs are launched through GraphQL, as
the UI does, go through the run queue, and land in PostgreSQL; then every process is restarted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.scheduler.instigation import InstigatorState
from dagster_shared.serdes import deserialize_value

from boston_lake.defs.catalog.sensors import CRAWL_TABLE_TAG
from boston_lake.defs.keys import CRAWLER_POOL, RANGE_END, RANGE_START
from boston_lake_tests.support.dagster_server import LAUNCH_RUN, REPOSITORY
from boston_lake_tests.support.deploy_files import DEPLOY, REPO, compose_service, image_entrypoint, image_environment

SENSOR = "crawl_landed_bronze"
# This test follows the crawls alone: the sensors downstream of bronze are stopped, as an operator would.
DOWNSTREAM_SENSORS = ("rebuild_silver_on_bronze_change", "gold_follows_silver")
TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
# Generous: on two cores shared with other test runs, each run and step process takes 20 s or more to start.
WAIT_SECONDS = 600


def with_option(argv: list[str], flag: str, value: str) -> list[str]:
    """The command with `flag`'s value replaced: the compose file's fixed ports would collide here."""
    index = argv.index(flag)
    return [*argv[: index + 1], value, *argv[index + 2 :]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Deployment:
    """The Dagster processes of docker-compose.yml, as local processes sharing one environment."""

    def __init__(self, root: Path, env: dict[str, str], webserver_port: int):
        self.root = root
        self.env = env
        self.webserver_port = webserver_port
        self.processes: dict[str, subprocess.Popen] = {}

    def command(self, service: str) -> list[str]:
        if service == "code-server":
            argv = image_entrypoint()
        else:
            argv = compose_service(service)["entrypoint"]
        if service == "webserver":
            argv = with_option(with_option(argv, "-p", str(self.webserver_port)), "-h", "127.0.0.1")
        return [str(Path(sys.executable).parent / argv[0]), *argv[1:]]

    def run_once(self, service: str) -> None:
        """A one-shot service (`restart: "no"`), run to completion."""
        assert compose_service(service)["restart"] == "no", service
        result = subprocess.run(self.command(service), cwd=REPO, env=self.env, capture_output=True, timeout=300)
        assert result.returncode == 0, f"{service} failed: {result.stdout!r} {result.stderr!r}"

    def start(self, service: str) -> None:
        log = (self.root / f"{service}.log").open("ab")
        # Its own process group, so that stopping it also stops the run processes it started.
        self.processes[service] = subprocess.Popen(
            self.command(service), cwd=REPO, env=self.env, stdout=log, stderr=log, start_new_session=True
        )

    def healthy(self, service: str) -> bool:
        """The service's compose healthcheck, run here."""
        kind, *argv = compose_service(service)["healthcheck"]["test"]
        assert kind == "CMD", kind
        if "-p" in argv:
            argv = with_option(argv, "-p", self.env["DAGSTER_CODE_SERVER_PORT"])
        command = [str(Path(sys.executable).parent / argv[0]), *argv[1:]]
        return subprocess.run(command, env=self.env, capture_output=True, timeout=60).returncode == 0

    def stop(self, service: str) -> None:
        process = self.processes.pop(service)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop_all(self) -> None:
        for service in list(self.processes):
            self.stop(service)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name} (last 40 lines)\n" + "\n".join(path.read_text(errors="replace").splitlines()[-40:])
            for path in sorted(self.root.glob("*.log"))
        )

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = requests.post(
            f"http://127.0.0.1:{self.webserver_port}/graphql",
            json={"query": query, "variables": variables},
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def wait_for(self, what: str, condition: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            for service, process in self.processes.items():
                assert process.poll() is None, f"{service} exited with {process.returncode}\n{self.logs()}"
            value = condition()
            if value:
                return value
            time.sleep(1)
        pytest.fail(f"timed out waiting for {what}\n{self.logs()}")


LOCATION_STATUS = """
query { workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus updatedTimestamp locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""
SENSOR_STATE = """
query Sensor($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
  ... on Sensor { id sensorState {
    status ticks(limit: 1) { status } typeSpecificData { ... on SensorData { lastCursor } }
  } }
} }
"""
STOP_SENSOR = "mutation Stop($id: String!) { stopSensor(id: $id) { __typename } }"
START_SENSOR = "mutation Start($selector: SensorSelector!) { startSensor(sensorSelector: $selector) { __typename } }"


def location_loaded(deployment: Deployment, after: float = 0.0) -> float | None:
    """When the webserver last loaded the code location over gRPC, if it has one loaded since `after`."""
    try:
        entries = deployment.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
    except requests.ConnectionError:
        return None  # the webserver is not listening yet
    (entry,) = entries
    if entry["loadStatus"] != "LOADED" or entry["updatedTimestamp"] <= after:
        return None
    location = entry["locationOrLoadError"]
    return entry["updatedTimestamp"] if location and location["__typename"] == "RepositoryLocation" else None


def launch(deployment: Deployment, job_name: str, tags: dict[str, str]) -> str:
    params = {
        "selector": {**REPOSITORY, "jobName": job_name},
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": key, "value": value} for key, value in tags.items()]},
    }
    result = deployment.graphql(LAUNCH_RUN, params=params)["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def sensor_state(deployment: Deployment, name: str = SENSOR) -> dict[str, Any]:
    return deployment.graphql(SENSOR_STATE, selector={**REPOSITORY, "sensorName": name})["sensorOrError"]


def hold_sensor(deployment: Deployment, name: str = SENSOR) -> None:
    """Stop a sensor, as the UI's toggle does, and see that it stays stopped: a tick in flight when
    the stop lands writes the sensor's state back as running when it ends (Dagster 1.13), so stop again."""
    observed: list[bool] = []
    sensor_id = sensor_state(deployment, name)["id"]

    def stopped_twice() -> bool:
        state = sensor_state(deployment, name)["sensorState"]
        ticking = bool(state["ticks"]) and state["ticks"][0]["status"] == "STARTED"
        if state["status"] != "STOPPED" and not ticking:
            result = deployment.graphql(STOP_SENSOR, id=sensor_id)["stopSensor"]
            assert result["__typename"] == "StopSensorMutationResult", result
        observed.append(state["status"] == "STOPPED" and not ticking)
        return observed[-2:] == [True, True]

    deployment.wait_for(f"sensor {name} to stay stopped", stopped_twice)


def finished(deployment: Deployment, instance: DagsterInstance, run_ids: list[str]) -> list[DagsterRun]:
    def all_done() -> list[DagsterRun] | None:
        runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
        return runs if all(run is not None and run.status in TERMINAL for run in runs) else None

    runs = deployment.wait_for(f"runs {run_ids} to finish", all_done)
    for run in runs:
        failures = [
            entry.dagster_event.message or ""
            for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
            if entry.dagster_event
        ]
        assert run.status == DagsterRunStatus.SUCCESS, f"{run.job_name} {run.run_id}: {failures}\n{deployment.logs()}"
    return runs


def crawl_runs(instance: DagsterInstance) -> list[DagsterRun]:
    return list(reversed(instance.get_runs(RunsFilter(tags={"dagster/sensor_name": SENSOR}))))


def crawled_years(run: DagsterRun) -> list[int]:
    if "dagster/partition" in run.tags:
        return [int(run.tags["dagster/partition"])]
    return list(range(int(run.tags[RANGE_START]), int(run.tags[RANGE_END]) + 1))


def was_enqueued(instance: DagsterInstance, run_id: str) -> bool:
    return bool(instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_ENQUEUED).records)


@pytest.fixture
def deployment(tmp_path: Path, postgres, portal, monkeypatch) -> Iterator[Deployment]:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copyfile(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")
    lake_variables = [name for name in os.environ if name.startswith(("BOSTON_LAKE_", "AWS_"))]
    env = {name: value for name, value in os.environ.items() if name not in lake_variables}
    env.update(
        DAGSTER_HOME=str(dagster_home),
        DAGSTER_POSTGRES_URL=postgres.url(),
        DAGSTER_CODE_SERVER_HOST="127.0.0.1",
        DAGSTER_CODE_SERVER_PORT=str(free_port()),
        DAGSTER_LOCATION_NAME=image_environment()["DAGSTER_LOCATION_NAME"],
        BOSTON_LAKE_HOME=str(tmp_path / "lake"),
        BOSTON_LAKE_PORTAL_URL=portal.url,
    )
    # This process reads the same instance, to see what the deployment stored.
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres.url())
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    deployment = Deployment(tmp_path, env, free_port())
    try:
        yield deployment
    finally:
        deployment.stop_all()


def start(deployment: Deployment, postgres) -> None:
    """Every process, in the order compose starts them: database, code server, then webserver and daemon."""
    if not postgres.running:
        postgres.start()
    deployment.run_once("init-pools")
    deployment.start("code-server")
    deployment.wait_for("the code server's healthcheck", lambda: deployment.healthy("code-server"))
    for service in ("webserver", "daemon"):
        deployment.start(service)
    deployment.wait_for("the webserver to load the code location over gRPC", lambda: location_loaded(deployment))


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_a_year_goes_raw_to_catalog_through_the_queue_and_survives_a_restart_of_everything(
    deployment, postgres, portal
):
    start(deployment, postgres)
    sensor = sensor_state(deployment)
    assert sensor["sensorState"]["status"] == "RUNNING"
    for name in DOWNSTREAM_SENSORS:
        hold_sensor(deployment, name)
    # Held while both tables land, so that one tick requests both crawls and the pool must order them.
    hold_sensor(deployment)

    ingest = [
        launch(deployment, "ingest_legacy_requests", {"dagster/partition": "2013"}),
        launch(deployment, "ingest_new_system_requests", {"dagster/partition": "2025"}),
    ]
    with DagsterInstance.get() as instance:
        finished(deployment, instance, ingest)
        assert all(was_enqueued(instance, run_id) for run_id in ingest), "runs bypassed the queue"

        selector = {**REPOSITORY, "sensorName": SENSOR}
        assert deployment.graphql(START_SENSOR, selector=selector)["startSensor"]["__typename"] == "Sensor"
        deployment.wait_for("the sensor to request both crawls", lambda: len(crawl_runs(instance)) == 2)
        crawls = finished(deployment, instance, [run.run_id for run in crawl_runs(instance)])
        assert sorted((run.tags[CRAWL_TABLE_TAG], tuple(crawled_years(run))) for run in crawls) == [
            ("legacy_requests", (2013,)),
            ("new_system_requests", (2025,)),
        ]
        # Both were queued by one tick; the crawler pool (one slot) let the second start only after the first.
        first, second = sorted(
            (instance.get_run_record_by_id(run.run_id) for run in crawls), key=lambda record: record.start_time
        )
        assert second.create_timestamp.timestamp() < first.end_time, "the crawls were not queued together"
        assert second.start_time >= first.end_time, f"crawls overlapped in pool {CRAWLER_POOL}"
        # Held again: what it does after the restarts below shows whether its cursor survived them.
        hold_sensor(deployment)
        cursor_before = sensor_state(deployment)["sensorState"]["typeSpecificData"]["lastCursor"]
        assert json.loads(cursor_before).keys() == {"legacy_requests", "new_system_requests"}

    # It is all in PostgreSQL: runs, materializations per partition, the sensor's cursor.
    runs_in_postgres = {job: status for job, status in postgres.psql("SELECT pipeline_name, status FROM runs")}
    assert runs_in_postgres == {
        "ingest_legacy_requests": "SUCCESS",
        "ingest_new_system_requests": "SUCCESS",
        "crawl_legacy_requests": "SUCCESS",
        "crawl_new_system_requests": "SUCCESS",
    }
    materialized = set(
        postgres.psql("SELECT asset_key, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
    )
    assert {(json.loads(key)[0], partition) for key, partition in materialized} == {
        ("raw", "2013"),
        ("bronze", "2013"),
        ("catalog", "2013"),
        ("raw", "2025"),
        ("bronze", "2025"),
        ("catalog", "2025"),
    }
    states = [
        deserialize_value(body, InstigatorState) for (body,) in postgres.psql("SELECT instigator_body FROM instigators")
    ]
    assert [state.instigator_data.cursor for state in states if state.name == SENSOR] == [cursor_before]
    assert not list(Path(deployment.env["DAGSTER_HOME"]).rglob("*.db")), "a SQLite storage was created"

    # A code deploy: only the code server restarts; the webserver reloads it and the daemon launches through it.
    loaded_at = deployment.wait_for("the code location", lambda: location_loaded(deployment))
    deployment.stop("code-server")
    deployment.start("code-server")
    deployment.wait_for("the webserver to reload the new server", lambda: location_loaded(deployment, loaded_at))
    with DagsterInstance.get() as instance:
        finished(deployment, instance, [launch(deployment, "ingest_legacy_requests", {"dagster/partition": "2022"})])

    # Restart every process, the database included.
    deployment.stop_all()
    postgres.stop()
    start(deployment, postgres)

    with DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == 5
        after_restart = sensor_state(deployment)["sensorState"]
        assert after_restart["status"] == "STOPPED"
        assert after_restart["typeSpecificData"]["lastCursor"] == cursor_before
        # Started again, the sensor resumes from its cursor: 2022, which landed since, is the only year crawled.
        assert deployment.graphql(START_SENSOR, selector=selector)["startSensor"]["__typename"] == "Sensor"
        deployment.wait_for("a crawl of 2022", lambda: len(crawl_runs(instance)) == 3)
        (latest,) = finished(deployment, instance, [crawl_runs(instance)[-1].run_id])
        assert (latest.tags[CRAWL_TABLE_TAG], crawled_years(latest)) == ("legacy_requests", [2022])
        assert instance.get_materialized_partitions(AssetKey(["catalog", "legacy_requests"])) == {"2013", "2022"}
