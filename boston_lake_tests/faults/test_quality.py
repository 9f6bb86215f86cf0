"""Quiet inputs made loud: what the bronze checks say, run by Dagster as a materialization runs them."""

from __future__ import annotations

from dagster import AssetCheckSeverity, DagsterInstance, Definitions

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
    "input", "duplicate case ids within a year", "every row kept; the `case_id_present_and_unique` check fails (ERROR)"
)
def test_duplicate_ids_are_an_error(
    local_defs: Definitions, dagster_instance: DagsterInstance, portal: TestPortal
) -> None:
    lines = portal.file_for(LEGACY_2022_ID).read_bytes().splitlines(keepends=True)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines + lines[1:3]))
    checks = checks_after_ingest(local_defs, dagster_instance)
    ids = checks["case_id_present_and_unique"]
    assert not ids.passed and ids.severity == AssetCheckSeverity.ERROR
    assert "2022: 0 rows without case_enquiry_id, 2 ids repeated" in ids.description
    assert checks["rows_reconcile_with_raw"].passed  # the 102 rows are all in bronze
