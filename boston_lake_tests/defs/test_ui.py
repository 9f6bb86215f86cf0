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
