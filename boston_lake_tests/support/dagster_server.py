"""A real `dagster dev` (webserver, daemon, code server) over a test lake, and a GraphQL client for it.

UI claims are tested the way the UI meets them: through the webserver's GraphQL API, with the daemon
launching the runs. The instance uses the repository's shipped `.dagster_home/dagster.yaml`, in a fresh
DAGSTER_HOME under tmp, on an ephemeral port, so parallel test runs never share state.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from boston_lake.sample_portal.server import SamplePortal, copy_sample_data

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 180
# The code location as the webserver names it (a Definitions object is the repository `__repository__`).
REPOSITORY = {"repositoryLocationName": "boston_lake", "repositoryName": "__repository__"}
LAUNCH_RUN = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""

LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
    ... on RunConflict { message }
    ... on ConflictingExecutionParamsError { message }
    ... on PresetNotFoundError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on NoModeProvidedError { message }
    ... on InvalidSubsetError { message }
  }
}
"""
BACKFILL_STATUS = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status }
  }
}
"""
BACKFILL_FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
PARTITION_STATUS = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetPartitionStatuses {
        ... on TimePartitionStatuses { ranges { status startKey endKey } }
      }
    }
  }
}
"""


class GraphQLError(AssertionError):
    pass


@dataclass
class DagsterServer:
    url: str
    dagster_home: Path
    lake_home: Path
    log: Path
    portal: Any  # the TestPortal it downloads from: tests queue faults on it
    process_group: int  # `dagster dev` and everything it started

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(body["errors"])
        return body["data"]

    def launch_run(self, selector: dict[str, Any], tags: dict[str, str] | None = None) -> str:
        """Launch a run as the UI does: `selector` names the job (and any asset or check subset); the run's id."""
        params = {
            "selector": {**REPOSITORY, **selector},
            "mode": "default",
            "executionMetadata": {"tags": [{"key": key, "value": value} for key, value in (tags or {}).items()]},
        }
        launched = self.graphql(LAUNCH_RUN, params=params)["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def backfill(self, params: dict[str, Any], timeout: float) -> str:
        """Launch a backfill as the UI's "Launch backfill" does (`params`: LaunchBackfillParams); its final status."""
        launched = self.graphql(LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        def finished() -> str | None:
            status = self.graphql(BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
            return status if status in BACKFILL_FINISHED else None

        return self.wait_for(finished, timeout=timeout, what=f"backfill {backfill_id}")

    def wait_for(self, condition: Any, timeout: float, what: str, interval: float = 2.0) -> Any:
        """Poll `condition()` until it returns something truthy; fail naming `what` and the server's log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(interval)
        tail = self.log.read_text(errors="replace")[-4000:]
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; dagster dev log ends:\n{tail}")


def partition_status(server: DagsterServer, *path: str) -> dict[str, str]:
    """Year -> MATERIALIZED / FAILED / MATERIALIZING as the asset's partition view shows it (absent: missing)."""
    node = server.graphql(PARTITION_STATUS, key={"path": list(path)})["assetNodeOrError"]
    years = {}
    for status_range in node["assetPartitionStatuses"]["ranges"]:
        for year in range(int(status_range["startKey"]), int(status_range["endKey"]) + 1):
            years[str(year)] = status_range["status"]
    return years


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _responds(url: str) -> bool:
    try:
        return requests.get(f"{url}/server_info", timeout=5).ok
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def dagster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterServer]:
    """One server per test module (starting one takes tens of seconds); tests use years of their own."""
    from boston_lake_tests.support.portal import TestPortal  # imported here: pytest loads it as a plugin itself

    tmp_path = tmp_path_factory.mktemp("dagster_server")
    with TestPortal(copy_sample_data(tmp_path / "portal_data")) as portal:
        yield from _serve(portal, tmp_path)


def _serve(portal: SamplePortal, tmp_path: Path, instance_config: str | None = None) -> Iterator[DagsterServer]:
    """`dagster dev` on the shipped instance config, or on `instance_config` (the text of a dagster.yaml)."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    if instance_config is None:
        shutil.copyfile(REPO / ".dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
    else:
        (dagster_home / "dagster.yaml").write_text(instance_config)
    lake_home = tmp_path / "lake_home"
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "BOSTON_LAKE_TARGET": "local",
        "BOSTON_LAKE_HOME": str(lake_home),
        "BOSTON_LAKE_PORTAL_URL": portal.url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    log = tmp_path / "dagster_dev.log"
    command = [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the webserver, daemon and code server stop together
        )
    server = DagsterServer(f"http://127.0.0.1:{port}", dagster_home, lake_home, log, portal, process.pid)
    try:
        server.wait_for(lambda: process.poll() is not None or _responds(server.url), STARTUP_TIMEOUT_SECONDS, "start")
        assert process.poll() is None, f"dagster dev exited: {log.read_text(errors='replace')[-4000:]}"
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
