"""The first hour in the UI, walked end to end: `make demo-ui` on a fresh Dagster home and lake, a backfill of
every year of every asset launched as the UI launches it, and then the daemon's sensors and automation left to
finish. The lake it leaves is whole: every partition of every asset materialized with rows, none failed; and
every run says who launched it."""

from __future__ import annotations

import time

import pytest

from boston_lake.defs.gold.assets import GOLD_KEYS
from boston_lake.defs.keys import SILVER_KEY, bronze_key, catalog_key, raw_key
from boston_lake.defs.partitions import SILVER_PARTITIONS, partitions_for
from boston_lake.lake.tables import TABLES
from boston_lake_tests.support.dagster_server import REPOSITORY, DagsterServer, partition_status

# Every asset with the years it declares (2011 to the running year; NEW SYSTEM from 2025).
EVERY_ASSET = {
    **{
        key.to_user_string(): partitions_for(table).get_partition_keys()
        for table in TABLES
        for key in (raw_key(table), bronze_key(table), catalog_key(table))
    },
    **{key.to_user_string(): SILVER_PARTITIONS.get_partition_keys() for key in (SILVER_KEY, *GOLD_KEYS)},
}
UNFINISHED_RUNS = """
query {
  runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) {
    ... on Runs { results { runId jobName } }
  }
}
"""
RUN_TAGS = """
query { runsOrError { ... on Runs { results { jobName tags { key } } } } }
"""
RUN_COUNT = """
query { runsOrError { ... on Runs { count } } }
"""
SENSOR_TICKS = """
query ($selector: RepositorySelector!) {
  sensorsOrError(repositorySelector: $selector) {
    ... on Sensors { results { name sensorState { status ticks(limit: 1) { timestamp } } } }
  }
}
"""
ROW_COUNTS = """
query ($key: AssetKeyInput!, $partitions: [String!]) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      latestMaterializationByPartition(partitions: $partitions) {
        partition metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""


def unfinished_runs(server: DagsterServer) -> list[str]:
    return [run["jobName"] for run in server.graphql(UNFINISHED_RUNS)["runsOrError"]["results"]]


def latest_ticks(server: DagsterServer) -> dict[str, float]:
    """The time of each running sensor's newest tick (the automation sensor that builds gold is one of them)."""
    sensors = server.graphql(SENSOR_TICKS, selector=REPOSITORY)["sensorsOrError"]["results"]
    return {
        sensor["name"]: max((tick["timestamp"] for tick in sensor["sensorState"]["ticks"]), default=0.0)
        for sensor in sensors
        if sensor["sensorState"]["status"] == "RUNNING"
    }


def settled(server: DagsterServer) -> bool:
    """No run is left to finish, and every sensor has ticked since and requested nothing more."""
    if unfinished_runs(server):
        return False
    runs, idle_since = server.graphql(RUN_COUNT)["runsOrError"]["count"], time.time()
    server.wait_for(
        lambda: all(at > idle_since for at in latest_ticks(server).values()),
        timeout=180,
        what="every sensor to tick once more",
    )
    return not unfinished_runs(server) and server.graphql(RUN_COUNT)["runsOrError"]["count"] == runs


def row_counts(server: DagsterServer, asset: str, years: list[str]) -> dict[str, int | None]:
    """Year -> `dagster/row_count` of its latest materialization, as the partition's page shows it."""
    node = server.graphql(ROW_COUNTS, key={"path": asset.split("/")}, partitions=years)["assetNodeOrError"]
    counts: dict[str, int | None] = {}
    for materialization in node["latestMaterializationByPartition"]:
        if materialization:
            entries = {entry["label"]: entry.get("intValue") for entry in materialization["metadataEntries"]}
            counts[materialization["partition"]] = entries.get("dagster/row_count")
    return counts


@pytest.mark.e2e
@pytest.mark.timeout(2400)  # sixteen years through every zone, with the sensors' runs after, on a shared machine
def test_a_backfill_of_every_year_of_every_asset_leaves_the_demo_lake_whole(dagster_server: DagsterServer) -> None:
    status = dagster_server.backfill(
        {"assetSelection": [{"path": asset.split("/")} for asset in EVERY_ASSET], "allPartitions": True},
        timeout=1800,
    )
    assert status == "COMPLETED_SUCCESS", status
    dagster_server.wait_for(lambda: settled(dagster_server), timeout=600, what="the sensors' runs to finish")

    # Every run says who launched it (the backfill, or a sensor or the automation): none "Manually launched".
    runs = dagster_server.graphql(RUN_TAGS)["runsOrError"]["results"]
    unattributed = [
        run["jobName"]
        for run in runs
        if not {"dagster/backfill", "dagster/sensor_name"} & {t["key"] for t in run["tags"]}
    ]
    assert runs and not unattributed, unattributed

    for asset, years in EVERY_ASSET.items():
        statuses = partition_status(dagster_server, *asset.split("/"))
        assert statuses == dict.fromkeys(years, "MATERIALIZED"), asset  # none failed, none missing
        counts = row_counts(dagster_server, asset, years)
        assert counts.keys() == set(years) and all(counts.values()), (asset, counts)  # none filled with 0 rows
