"""What the Dagster UI shows, read through the webserver's GraphQL API with the daemon launching the runs."""

from __future__ import annotations

from boston_lake_tests.support.dagster_server import DagsterServer

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

FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def partition_status(server: DagsterServer, *path: str) -> dict[str, str]:
    """Year -> MATERIALIZED / FAILED / MATERIALIZING as the asset's partition view shows it (absent: missing)."""
    node = server.graphql(PARTITION_STATUS, key={"path": list(path)})["assetNodeOrError"]
    years = {}
    for status_range in node["assetPartitionStatuses"]["ranges"]:
        for year in range(int(status_range["startKey"]), int(status_range["endKey"]) + 1):
            years[str(year)] = status_range["status"]
    return years


def test_a_partly_failed_backfill_shows_the_stored_years_materialized_and_carries_them_downstream(
    dagster_server: DagsterServer,
) -> None:
    # The test portal offers legacy 2013 but not 2012 or 2014: the UI's "Launch backfill" over raw and bronze.
    launched = dagster_server.graphql(
        LAUNCH_BACKFILL,
        params={
            "partitionNames": ["2012", "2013", "2014"],
            "assetSelection": [{"path": ["raw", "legacy_requests"]}, {"path": ["bronze", "legacy_requests"]}],
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def finished() -> str | None:
        status = dagster_server.graphql(BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
        return status if status in FINISHED else None

    assert dagster_server.wait_for(finished, timeout=300, what=f"backfill {backfill_id}") in {
        "COMPLETED_FAILED",
        "FAILED",
    }
    assert partition_status(dagster_server, "raw", "legacy_requests") == {
        "2012": "FAILED",
        "2013": "MATERIALIZED",
        "2014": "FAILED",
    }
    # Bronze ran for the year whose raw partition was stored, and only for it.
    assert partition_status(dagster_server, "bronze", "legacy_requests") == {"2013": "MATERIALIZED"}
    assert (dagster_server.lake_home / "bronze/boston311/legacy_requests/year=2013/part-00000.parquet").is_file()


CHECKS = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetChecksOrError { ... on AssetChecks { checks { name blocking canExecuteIndividually } } }
    }
  }
}
"""

LAUNCH_RUN = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
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


def test_every_bronze_check_runs_alone_from_the_checks_tab(dagster_server: DagsterServer) -> None:
    bronze = {"path": ["bronze", "legacy_requests"]}
    checks = dagster_server.graphql(CHECKS, key=bronze)["assetNodeOrError"]["assetChecksOrError"]["checks"]
    assert {c["name"]: (c["blocking"], c["canExecuteIndividually"]) for c in checks} == {
        "case_id_present_and_unique": (True, "CAN_EXECUTE"),
        "rows_reconcile_with_raw": (True, "CAN_EXECUTE"),
        "no_rejected_rows": (False, "CAN_EXECUTE"),
        "open_dates_within_year": (False, "CAN_EXECUTE"),
    }
    # What the Checks tab's "Execute" sends: the implicit asset job with the one check selected, no asset.
    launched = dagster_server.graphql(
        LAUNCH_RUN,
        params={
            "selector": {
                "repositoryLocationName": "boston_lake",
                "repositoryName": "__repository__",
                "pipelineName": "__ASSET_JOB",
                "assetSelection": [],
                "assetCheckSelection": [{"assetKey": bronze, "name": "no_rejected_rows"}],
            },
            "mode": "default",
            "executionMetadata": {},
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    def ended() -> str | None:
        status = dagster_server.graphql(RUN, id=run_id)["runOrError"]["status"]
        return status if status in {"SUCCESS", "FAILURE", "CANCELED"} else None

    assert dagster_server.wait_for(ended, timeout=180, what=f"check run {run_id}") == "SUCCESS"
    execution = dagster_server.graphql(CHECK_EXECUTIONS, key=bronze, name="no_rejected_rows")["assetCheckExecutions"][0]
    assert execution["runId"] == run_id and execution["status"] == "SUCCEEDED"
    other = dagster_server.graphql(CHECK_EXECUTIONS, key=bronze, name="case_id_present_and_unique")
    assert all(e["runId"] != run_id for e in other["assetCheckExecutions"])  # the others did not run
