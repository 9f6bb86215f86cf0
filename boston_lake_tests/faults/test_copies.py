"""A lake moved the way people move folders: copied with `cp -r` (every file gets a new time) to a new home. Its
bronze years are known by their content, so the copy is current and no bronze year is built again; silver's and
gold's Iceberg metadata names the old home's absolute paths, so their tables are rebuilt from bronze once, and a
query before that says why."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, Definitions

from boston_lake.definitions import build_definitions
from boston_lake.defs.keys import RANGE_END, RANGE_START
from boston_lake.lake.settings import Settings
from boston_lake_tests.faults.conftest import boston_lake
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.support.portal import TestPortal

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
JOBS = ("ingest_legacy_requests", "build_silver_service_requests", "build_gold")


def run_all(defs: Definitions, instance: DagsterInstance) -> dict[str, dict[str, bool]]:
    """Bronze, silver and gold of 2022-2023, one run each; every materialization's `changed`, by asset and year."""
    changed: dict[str, dict[str, bool]] = {}
    for job in JOBS:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, tags={RANGE_START: "2022", RANGE_END: "2023"}, run_config=QUIET
        )
        assert result.success, job
        for event in result.get_asset_materialization_events():
            materialization: Any = event.event_specific_data.materialization
            if "changed" in materialization.metadata and not materialization.asset_key.path[0] == "raw":
                changed.setdefault(materialization.asset_key.to_user_string(), {})[materialization.partition] = (
                    materialization.metadata["changed"].value
                )
    return changed


def data_files(home: Path, zones: tuple[str, ...]) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for zone in zones for path in (home / zone).rglob("*.*")}


@fault(
    "bronze",
    "a lake copied with `cp -r` to a new home (every file with a new time)",
    "`status` says every year is current; bronze rebuilds nothing; silver and gold (Iceberg metadata names absolute "
    "paths) are rebuilt once from bronze, a query before that says why",
    rows_lost="n/a",
)
@pytest.mark.slow
def test_a_lake_copied_to_a_new_home_is_current_and_rebuilds_nothing(
    local_defs: Definitions, dagster_instance: DagsterInstance, portal: TestPortal, lake_home: Path, tmp_path: Path
) -> None:
    built = run_all(local_defs, dagster_instance)
    assert all(all(years.values()) for years in built.values()) and len(built) == 4, built
    count = ("query", "SELECT year, count(*) AS n FROM boston311.service_requests GROUP BY year ORDER BY 1")
    cases = boston_lake(*count, "--format", "csv", home=lake_home).stdout
    moved = tmp_path / "moved" / "lake"
    moved.parent.mkdir()
    subprocess.run(["cp", "-r", str(lake_home), str(moved)], check=True)
    shutil.rmtree(lake_home)  # nothing of the old home is left to read

    status = boston_lake("status", home=moved)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "DAMAGED" not in status.stdout
    years = [line for line in status.stdout.splitlines() if line.startswith("| legacy_requests")]
    assert len(years) == 2 and all(line.rstrip(" |").endswith("True") for line in years), status.stdout

    query = boston_lake(*count, home=moved)
    assert query.returncode == 1 and "the lake was copied or moved" in query.stderr, query.stderr

    before = data_files(moved, ("bronze",))
    copy = build_definitions(Settings.from_env({"BOSTON_LAKE_HOME": str(moved), "BOSTON_LAKE_PORTAL_URL": portal.url}))
    again = run_all(copy, dagster_instance)
    assert again == {asset: {year: not asset.startswith("bronze") for year in years} for asset, years in built.items()}
    assert data_files(moved, ("bronze",)) == before
    assert boston_lake(*count, "--format", "csv", home=moved).stdout == cases  # the same cases, rebuilt here
