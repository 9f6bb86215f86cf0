"""Worse data never replaces good data: a staged year that fails a blocking audit is refused, readers keep the
published year, and the run says why in one line. Driven the way it happens: the real portal republishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, AssetRecordsFilter, AssetSelection, DagsterInstance, Definitions, materialize

from boston_lake.defs.ingest import BRONZE_CHECKS, INGEST_ASSETS
from boston_lake.defs.keys import RANGE_END, RANGE_START, bronze_key
from boston_lake.lake import layout
from boston_lake.lake.catalog.crawler import Crawler
from boston_lake.lake.catalog.local import LocalCatalog
from boston_lake.lake.stores import LocalObjectStore
from boston_lake.lake.tables import DATABASE, LEGACY_REQUESTS
from boston_lake.lake.zones.publish import PublishRefused
from boston_lake_tests.faults.conftest import Lake, boston_lake
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.support.portal import LEGACY_2022_ID, LEGACY_2023_ID, NEW_SYSTEM_ID, TestPortal

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def ingest(
    defs: Definitions, instance: DagsterInstance, table: str, first: str, last: str, *, raw: bool = False, **config: Any
) -> Any:
    """The table's ingest job over `first`..`last`; `config` goes to bronze (and to raw too with `raw=True`)."""
    run_config: dict[str, Any] = dict(QUIET)
    if config:
        steps = ["bronze", "raw"] if raw else ["bronze"]
        run_config["ops"] = {f"{step}__{table}": {"config": config} for step in steps}
    return defs.resolve_job_def(f"ingest_{table}").execute_in_process(
        instance=instance,
        tags={RANGE_START: first, RANGE_END: last} if first != last else {},
        partition_key=first if first == last else None,
        run_config=run_config,
        raise_on_error=False,
    )


def bronze_failure(result: Any) -> tuple[str, dict[str, Any]]:
    """The bronze step's failure: its description and its metadata (values unwrapped)."""
    failure = next(
        event
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE" and event.step_key.startswith("bronze__")
    )
    data = failure.event_specific_data.user_failure_data
    return data.description, {name: value.value for name, value in data.metadata.items()}


def bronze_materializations(result: Any, table: str) -> dict[str, dict[str, Any]]:
    return {
        event.partition: {name: value.value for name, value in event.metadata.items()}
        for event in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
        if event.asset_key == AssetKey(["bronze", table])
    }


def stored_in_run(instance: DagsterInstance, run_id: str, table: str) -> dict[str, bool]:
    """The bronze years a run materialized (a run that fails logs the years it stored as materializations of their
    own), each with its `changed`."""
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(["bronze", table])), limit=100)
    return {
        record.partition_key: record.asset_materialization.metadata["changed"].value
        for record in records.records
        if record.run_id == run_id and record.partition_key and record.asset_materialization
    }


def bronze_rows(home: Path, table: str, year: int) -> int:
    return pq.ParquetFile(home / layout.bronze_data_key(table, year)).metadata.num_rows


def raw_rows(home: Path, year: int) -> int:
    """The data rows the raw manifest of a NEW SYSTEM year records."""
    manifest = LocalObjectStore(home).get_bytes(
        layout.raw_partition_prefix("new_system_requests", year) + layout.MANIFEST
    )
    return int(json.loads(manifest)["data_rows"])


def refused_file(home: Path, table: str, year: int) -> Path:
    return home / layout.refused_prefix("bronze", table, year) / layout.BRONZE_FILE


def crawl(home: Path) -> None:
    catalog = LocalCatalog(home / "catalog" / "catalog.sqlite")
    Crawler(LocalObjectStore(home), catalog, DATABASE).crawl(
        [(LEGACY_REQUESTS.name, layout.bronze_table_prefix(LEGACY_REQUESTS.name))]
    )


def checks_alone(defs: Definitions, instance: DagsterInstance) -> dict[str, Any]:
    """The bronze checks run on their own, as the Checks tab's Execute button runs them: on every published year."""
    asset = bronze_key(LEGACY_REQUESTS)
    checks = [check for check in BRONZE_CHECKS if any(key.asset_key == asset for key in check.check_keys)]
    result = materialize(
        [*(definition for definition in INGEST_ASSETS if definition.key == asset), *checks],
        selection=AssetSelection.checks_for_assets(asset),
        resources=defs.resources,
        instance=instance,
        run_config=QUIET,
    )
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


@fault(
    "source",
    "the portal republishes a legacy year with 10 of its 700 rows",
    "refused: readers keep the 700 (`query` returns them, the checks pass on them); the run fails naming "
    "`shrink_within_limit`, 700 → 10 and the refused file, which `status` lists; the other year of the run is "
    "published; a run with `accept_shrink` publishes the 10 and records why",
)
@pytest.mark.slow
def test_a_year_republished_with_10_of_its_700_rows_is_refused(
    local_defs: Definitions, dagster_instance: DagsterInstance, portal: TestPortal, lake_home: Path
) -> None:
    assert ingest(local_defs, dagster_instance, "legacy_requests", "2022", "2023").success
    crawl(lake_home)
    lines = portal.file_for(LEGACY_2023_ID).read_bytes().splitlines(keepends=True)
    portal.replace_file(LEGACY_2023_ID, b"".join(lines[:11]))
    (portal.file_for(LEGACY_2022_ID)).write_bytes(
        portal.file_for(LEGACY_2022_ID).read_bytes().replace(b"ONTIME", b"OVERDUE", 1)
    )

    refused_run = ingest(local_defs, dagster_instance, "legacy_requests", "2022", "2023")
    assert not refused_run.success
    description, metadata = bronze_failure(refused_run)
    refused = refused_file(lake_home, "legacy_requests", 2023)
    line = (
        "bronze/legacy_requests 2023: not published, shrink_within_limit refused the staged version: "
        "published 700 rows, 700 case ids, staged 10 rows, 10 case ids; 690 rows lost (98.6%), 690 case ids "
        "vanished (98.6%; e.g. "
    )
    assert line in description and f"the refused one is kept at {refused}" in description
    assert "bronze/legacy_requests: 1 of 2 years failed, the others are stored" in description
    assert metadata["check"] == "shrink_within_limit" and metadata["year"] == 2023
    assert metadata["published"] == {"rows": 700, "case ids": 700}
    assert metadata["staged"] == {"rows": 10, "case ids": 10}
    assert metadata["refused_uri"] == str(refused) and metadata["failed_years"] == [2023]
    # The year beside it passed, and is published and materialized by this run.
    assert stored_in_run(dagster_instance, refused_run.run_id, "legacy_requests") == {"2022": True}

    assert pq.ParquetFile(refused).metadata.num_rows == 10
    assert bronze_rows(lake_home, "legacy_requests", 2023) == 700
    crawl(lake_home)  # a crawl after the refusal: the refused file is bookkeeping, never a part of the table
    query = boston_lake(
        "query",
        "SELECT count(*) AS n FROM boston311.legacy_requests WHERE year = '2023'",
        "--format",
        "csv",
        home=lake_home,
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines() == ['"n"', "700"]
    status = boston_lake("status", home=lake_home)
    assert status.returncode == 0, status.stderr  # the published years are whole
    listed = status.stdout.split("refused by a blocking audit, kept for inspection", 1)[1].splitlines()[1]
    assert listed.strip().startswith(f"{refused} (")
    checks = checks_alone(local_defs, dagster_instance)
    assert {name: check.passed for name, check in checks.items()} == {
        "case_id_present_and_unique": True,
        "rows_reconcile_with_raw": True,
        "no_rejected_rows": True,
        "year_has_rows": True,
        "open_dates_within_year": True,
    }
    assert "raw now holds another file" in checks["rows_reconcile_with_raw"].description

    reason = "the city republished 2023 with 10 rows on purpose"
    accepted = ingest(local_defs, dagster_instance, "legacy_requests", "2023", "2023", accept_shrink=reason)
    assert accepted.success
    recorded = bronze_materializations(accepted, "legacy_requests")["2023"]
    assert recorded["dagster/row_count"] == 10
    assert recorded["shrink_accepted"] == {
        "reason": reason,
        "published_rows": 700,
        "staged_rows": 10,
        "published_case_ids": 700,
        "staged_case_ids": 10,
        "vanished_case_ids": 690,
    }
    assert bronze_rows(lake_home, "legacy_requests", 2023) == 10
    assert not refused.exists()  # removed by the next attempt


@fault(
    "input",
    "a quote left open in a republished file",
    "refused: `rows_reconcile_with_raw` fails on the staged version; readers keep the old year whole",
)
def test_an_unclosed_quote_is_refused_and_readers_keep_the_old_year(lake: Lake) -> None:
    old = lake.served()
    before = lake.ingest()
    lines = old.splitlines(keepends=True)
    fields = lines[68].split(b",")
    fields[5] = b'"' + fields[5]  # a quote opened in row 68 that nothing closes
    lake.portal.replace_file(LEGACY_2022_ID, b"".join([*lines[:68], b",".join(fields), *lines[69:]]))
    with pytest.raises(PublishRefused) as refused:
        lake.ingest()
    error = refused.value
    assert error.check == "rows_reconcile_with_raw" and error.year == 2022
    assert error.failures[0].published == {"rows": 100}
    staged = error.failures[0].staged
    assert staged["rows"] + staged["rejects"] != staged["raw data rows"]
    assert error.refused_uri == str(
        lake.home / layout.refused_prefix("bronze", "legacy_requests", 2022) / "part-00000.parquet"
    )
    assert "\n" not in str(error) and "rows_reconcile_with_raw refused the staged version" in str(error)
    assert (lake.home / layout.refused_prefix("bronze", "legacy_requests", 2022) / layout.REJECTS).exists()
    # Readers keep the old year, whole: the published object is the one the first build wrote.
    assert pq.ParquetFile(lake.bronze_key()).metadata.num_rows == before.rows == 100
    assert lake.rows_lost(old) == 0
    assert boston_lake("status", home=lake.home).returncode == 0


@fault(
    "source",
    "the DataStore serves 50 of its records (a reload in progress)",
    "refused before anything is kept: the run fails naming each year, held vs served; raw and bronze keep every "
    "row; a run with `accept_shrink` keeps the fetch and publishes the years, recording why",
)
@pytest.mark.slow
def test_a_datastore_serving_50_records_leaves_the_new_system_years_whole(
    local_defs: Definitions, dagster_instance: DagsterInstance, portal: TestPortal, lake_home: Path
) -> None:
    assert ingest(local_defs, dagster_instance, "new_system_requests", "2025", "2026").success
    before = {year: bronze_rows(lake_home, "new_system_requests", year) for year in (2025, 2026)}
    raw_before = {year: raw_rows(lake_home, year) for year in (2025, 2026)}
    lines = portal.file_for(NEW_SYSTEM_ID).read_bytes().splitlines(keepends=True)
    portal.replace_file(NEW_SYSTEM_ID, b"".join(lines[:51]))

    result = ingest(local_defs, dagster_instance, "new_system_requests", "2025", "2026")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "raw__new_system_requests"
    message = str(failure.event_specific_data.error)
    served = {
        2025: sum(b",2025-" in line[:40] for line in lines[1:51]),
        2026: sum(b",2026-" in line[:40] for line in lines[1:51]),
    }
    figures = (
        f"2025: {raw_before[2025]} held, {served[2025]} served, 2026: {raw_before[2026]} held, {served[2026]} served"
    )
    assert f"serves fewer records than the lake holds ({figures}); nothing was kept" in message
    assert {year: raw_rows(lake_home, year) for year in (2025, 2026)} == raw_before
    assert {year: bronze_rows(lake_home, "new_system_requests", year) for year in (2025, 2026)} == before
    assert sum(before.values()) == len(lines) - 1  # every record the portal served the first time

    reason = "the city withdrew the transitioned case types"
    accepted = ingest(
        local_defs, dagster_instance, "new_system_requests", "2025", "2026", raw=True, accept_shrink=reason
    )
    assert accepted.success
    assert {year: raw_rows(lake_home, year) for year in (2025, 2026)} == served
    assert bronze_materializations(accepted, "new_system_requests")["2025"]["shrink_accepted"]["reason"] == reason


@fault(
    "input",
    "the portal restores a year after a refused version of it",
    "the restored year is published and the refused version is removed, folders and all: `_refused/` is gone",
)
def test_a_cleared_refusal_leaves_no_empty_folders(lake: Lake) -> None:
    old = lake.served()
    lake.ingest()
    lake.portal.replace_file(LEGACY_2022_ID, b"".join(old.splitlines(keepends=True)[:11]))
    with pytest.raises(PublishRefused):
        lake.ingest()
    assert (lake.home / layout.refused_prefix("bronze", "legacy_requests", 2022) / layout.BRONZE_FILE).exists()

    lake.portal.replace_file(LEGACY_2022_ID, old)
    assert lake.ingest().rows == 100
    assert not (lake.home / layout.REFUSED_PREFIX).exists()
    assert lake.rows_lost(old) == 0
