"""Quiet inputs made loud: what the bronze checks say, run by Dagster as a materialization runs them."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from dagster import AssetCheckSeverity, DagsterInstance, Definitions

from boston_lake.lake import layout
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.support.portal import LEGACY_2022_ID, TestPortal


def checks_after_ingest(defs: Definitions, instance: DagsterInstance) -> dict[str, object]:
    result = defs.resolve_job_def("ingest_legacy_requests").execute_in_process(
        instance=instance, partition_key="2022", raise_on_error=False
    )
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


@fault("input", "a header-only file (a year with 0 rows)", "stored, and the `year_has_rows` check warns (WARN)")
def test_header_only_year_warns(local_defs: Definitions, dagster_instance: DagsterInstance, portal: TestPortal) -> None:
    header = portal.file_for(LEGACY_2022_ID).read_bytes().split(b"\n")[0]
    portal.replace_file(LEGACY_2022_ID, header + b"\n")
    checks = checks_after_ingest(local_defs, dagster_instance)
    empty = checks["year_has_rows"]
    assert not empty.passed and empty.severity == AssetCheckSeverity.WARN
    assert empty.description == "2022: 0 rows: the raw file has a header and no data rows"
    assert checks["rows_reconcile_with_raw"].passed  # 0 + 0 = 0: nothing lost, but nothing green about it


@fault(
    "input",
    "duplicate case ids within a year",
    "refused before readers see it: the run fails naming `case_id_present_and_unique` and the repeated ids; the "
    "refused version, every row in it, is kept under `_refused/`",
)
def test_duplicate_ids_are_an_error(
    local_defs: Definitions, dagster_instance: DagsterInstance, portal: TestPortal, lake_home: Path
) -> None:
    lines = portal.file_for(LEGACY_2022_ID).read_bytes().splitlines(keepends=True)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines + lines[1:3]))
    result = local_defs.resolve_job_def("ingest_legacy_requests").execute_in_process(
        instance=dagster_instance, partition_key="2022", raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error = str(failure.event_specific_data.error)
    assert "case_id_present_and_unique refused the staged version" in error and "2 ids repeated" in error
    refused = lake_home / layout.refused_prefix("bronze", "legacy_requests", 2022) / layout.BRONZE_FILE
    assert str(refused) in error
    assert pq.ParquetFile(refused).metadata.num_rows == 102  # every row kept, in the refused version
    assert not (lake_home / layout.bronze_data_key("legacy_requests", 2022)).exists()
