"""End to end through Dagster: the real definitions, a real HTTP portal, a real instance."""

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey

from boston_lake.definitions import build_definitions
from boston_lake.lake import layout
from boston_lake.lake.settings import Settings
from boston_lake_tests.support.portal import LEGACY_2022_ID, NEW_SYSTEM_ID, status

RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def run(defs, instance, table, *, year=None, years=None, config=None):
    job = defs.resolve_job_def(f"ingest_{table}")
    tags = {RANGE[0]: years[0], RANGE[1]: years[1]} if years else {}
    return job.execute_in_process(
        instance=instance, partition_key=year, tags=tags, run_config=config or {}, raise_on_error=False
    )


def materializations(result, asset: str) -> dict[str, dict]:
    return {
        event.partition: event.metadata
        for event in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
        if event.asset_key == AssetKey(asset.split("/"))
    }


@pytest.mark.parametrize("year,generation,rows", [("2022", "legacy_v1", 100), ("2013", "legacy_v2", 700)])
def test_a_legacy_year_goes_from_portal_to_bronze(local_defs, dagster_instance, lake_home, year, generation, rows):
    result = run(local_defs, dagster_instance, "legacy_requests", year=year)
    assert result.success
    raw = materializations(result, "raw/legacy_requests")[year]
    bronze = materializations(result, "bronze/legacy_requests")[year]
    assert raw["dagster/row_count"].value == rows and raw["changed"].value is True and len(raw["sha256"].value) == 64
    assert "data_rows" not in raw and "rows" not in bronze  # one row count per partition
    assert raw["bytes"].value.endswith(" kB") and bronze["bytes"].value.endswith(" kB")
    assert bronze["dagster/row_count"].value == rows and bronze["rejects"].value == 0
    assert bronze["schema_generation"].value == generation and bronze["raw_sha256"].value == raw["sha256"].value
    preview = [line.split("|")[1:-1] for line in bronze["preview"].value.splitlines()[2:]]
    first_rows = pq.read_table(lake_home / layout.bronze_data_key("legacy_requests", int(year))).slice(0, len(preview))
    columns = [name.strip() for name in bronze["preview"].value.splitlines()[0].split("|")[1:-1]]
    assert columns[0] == "case_enquiry_id" and "nan" not in bronze["preview"].value
    nulls = [row[column] is None for row in first_rows.select(columns).to_pylist() for column in columns]
    assert any(nulls) or year == "2013"  # the 2022 sample's first rows have blank fields
    assert [cell.strip() == "" for row in preview for cell in row] == nulls  # a null is an empty cell
    assert [c.name for c in bronze["dagster/column_schema"].schema.columns][:2] == ["case_enquiry_id", "open_dt"]
    data_version = next(iter(result.get_asset_materialization_events())).event_specific_data.materialization.tags
    assert data_version["dagster/data_version"] == raw["sha256"].value
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "case_id_present_and_unique": True,
        "rows_reconcile_with_raw": True,
        "no_rejected_rows": True,
        "year_has_rows": True,
        "open_dates_within_year": True,
    }
    assert pq.read_metadata(lake_home / layout.bronze_data_key("legacy_requests", int(year))).num_rows == rows


@pytest.mark.parametrize("source,fetches", [("", "datastore_search"), ("csv", "/download/")])
def test_new_system_range_run_splits_and_converts_both_years(dagster_instance, portal, lake_home, source, fetches):
    settings = Settings.from_env(
        {
            "BOSTON_LAKE_HOME": str(lake_home),
            "BOSTON_LAKE_PORTAL_URL": portal.url,
            "BOSTON_LAKE_NEW_SYSTEM_SOURCE": source,
        }
    )
    result = run(build_definitions(settings), dagster_instance, "new_system_requests", years=("2025", "2026"))
    assert result.success
    bronze = materializations(result, "bronze/new_system_requests")
    assert set(bronze) == {"2025", "2026"}
    total = sum(meta["dagster/row_count"].value for meta in bronze.values())
    assert total == len(portal.file_for(NEW_SYSTEM_ID).read_bytes().splitlines()) - 1
    # One read of the source per run: by default the DataStore (the sample fits one page), or the CSV file.
    assert len([r for r in portal.requests if NEW_SYSTEM_ID in r.path]) == 1
    assert len([r for r in portal.requests if fetches in r.path]) == 1
    raw = materializations(result, "raw/new_system_requests")
    assert {meta["key"].value.rsplit(".", 1)[-1] for meta in raw.values()} == {"jsonl" if source == "" else "csv"}


def test_single_run_backfill_of_several_years_is_one_run(local_defs, dagster_instance, portal):
    result = run(local_defs, dagster_instance, "legacy_requests", years=("2013", "2016"))
    assert result.success
    assert set(materializations(result, "bronze/legacy_requests")) == {"2013", "2014", "2015", "2016"}
    assert len(dagster_instance.get_runs()) == 1
    package_requests = [r for r in portal.requests if "package_show" in r.path]
    assert len(package_requests) == 1


def test_rerun_with_an_unchanged_source_writes_nothing(local_defs, dagster_instance, lake_home):
    assert run(local_defs, dagster_instance, "legacy_requests", year="2022").success
    files = {p: p.stat().st_mtime_ns for p in lake_home.rglob("*") if p.is_file() and ".staging" not in p.parts}
    again = run(local_defs, dagster_instance, "legacy_requests", year="2022")
    assert again.success
    assert materializations(again, "raw/legacy_requests")["2022"]["changed"].value is False
    assert materializations(again, "bronze/legacy_requests")["2022"]["changed"].value is False
    assert {p: p.stat().st_mtime_ns for p in files} == files
    first_version = dagster_instance.get_latest_materialization_event(AssetKey(["raw", "legacy_requests"]))
    assert (
        first_version.asset_materialization.tags["dagster/data_version"]
        == materializations(again, "raw/legacy_requests")["2022"]["sha256"].value
    )


def test_a_changed_source_replaces_the_partition(local_defs, dagster_instance, portal, lake_home):
    assert run(local_defs, dagster_instance, "legacy_requests", year="2022").success
    lines = portal.file_for(LEGACY_2022_ID).read_bytes().splitlines(keepends=True)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines[:41]))
    accept = {"ops": {"bronze__legacy_requests": {"config": {"accept_shrink": "the city cut 2022 to 40 rows"}}}}
    result = run(local_defs, dagster_instance, "legacy_requests", year="2022", config=accept)
    assert result.success
    assert materializations(result, "bronze/legacy_requests")["2022"]["dagster/row_count"].value == 40
    assert pq.read_metadata(lake_home / layout.bronze_data_key("legacy_requests", 2022)).num_rows == 40


def test_force_rebuilds_bronze_from_the_same_raw_file(local_defs, dagster_instance):
    assert run(local_defs, dagster_instance, "legacy_requests", year="2022").success
    forced = run(
        local_defs,
        dagster_instance,
        "legacy_requests",
        year="2022",
        config={"ops": {"bronze__legacy_requests": {"config": {"force": True}}}},
    )
    assert materializations(forced, "bronze/legacy_requests")["2022"]["changed"].value is True


def observations(result, asset: str) -> dict[str, dict]:
    return {
        event.partition: event.metadata
        for event in (e.event_specific_data.asset_observation for e in result.all_events if e.is_asset_observation)
        if event.asset_key == AssetKey(asset.split("/"))
    }


def test_a_year_the_portal_lacks_is_observed_and_left_missing_and_bronze_is_skipped(
    local_defs, dagster_instance, portal
):
    portal.withdraw_legacy_years(2019)
    result = run(local_defs, dagster_instance, "legacy_requests", year="2019")
    assert result.success
    (observed,) = observations(result, "raw/legacy_requests").items()
    assert observed[0] == "2019" and observed[1]["published"].value is False
    assert 2019 not in observed[1]["portal_offers"].value and 2020 in observed[1]["portal_offers"].value
    assert "offers no resource for 2019; it offers 2011, 2012" in observed[1]["reason"].value
    assert not materializations(result, "raw/legacy_requests") and not materializations(
        result, "bronze/legacy_requests"
    )
    skipped = [e for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
    assert "bronze__legacy_requests" in [e.step_key for e in skipped]  # and its checks
    for key in (["raw", "legacy_requests"], ["bronze", "legacy_requests"]):
        assert not dagster_instance.get_materialized_partitions(AssetKey(key))
    # Bronze launched alone for that year says plainly that raw has no such year.
    alone = local_defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dagster_instance,
        partition_key="2019",
        asset_selection=[AssetKey(["bronze", "legacy_requests"])],
        raise_on_error=False,
    )
    failure = next(e for e in alone.all_events if e.event_type_value == "STEP_FAILURE")
    assert "legacy_requests 2019: the raw partition" in str(failure.event_specific_data.error)
    assert "has not been ingested; materialize raw/legacy_requests for 2019 first" in str(
        failure.event_specific_data.error
    )


def test_a_range_run_stores_the_published_years_and_leaves_the_others_missing(local_defs, dagster_instance, portal):
    portal.withdraw_legacy_years(2012, 2014)
    result = run(local_defs, dagster_instance, "legacy_requests", years=("2012", "2014"))
    assert result.success
    assert set(observations(result, "raw/legacy_requests")) == {"2012", "2014"}
    stored = materializations(result, "raw/legacy_requests")
    assert set(stored) == {"2013"} and stored["2013"]["dagster/row_count"].value == 700
    assert dagster_instance.get_materialized_partitions(AssetKey(["raw", "legacy_requests"])) == {"2013"}
    # Raw returned no output, so bronze waits for a run of its own (a backfill launches it for 2013 alone).
    assert "bronze__legacy_requests" in [e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]


def test_a_range_run_records_the_years_it_stored_before_failing_on_the_others(local_defs, dagster_instance, portal):
    portal.faults.extend([status(403), None, status(403)])  # 2012 and 2014 are refused, 2013 downloads
    result = run(local_defs, dagster_instance, "legacy_requests", years=("2012", "2014"))
    assert not result.success
    stored = dagster_instance.get_latest_materialization_event(AssetKey(["raw", "legacy_requests"]))
    assert stored.asset_materialization.partition == "2013"
    assert stored.asset_materialization.metadata["dagster/row_count"].value == 700
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "raw/legacy_requests: 2 of 3 years failed" in message
    assert "2012:" in message and "2014:" in message
    assert dagster_instance.get_materialized_partitions(AssetKey(["raw", "legacy_requests"])) == {"2013"}


def test_bronze_checks_flag_duplicate_ids(local_defs, dagster_instance, portal, lake_home):
    lines = portal.file_for(LEGACY_2022_ID).read_bytes().splitlines(keepends=True)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines + lines[1:3]))
    result = run(local_defs, dagster_instance, "legacy_requests", year="2022")
    # A blocking audit of the staged year: the run that built it fails, naming the check, and nothing is published
    # (so the checks, which judge the published year, have nothing to judge in this run).
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "case_id_present_and_unique" in str(failure.event_specific_data.error)
    assert "2 ids repeated" in str(failure.event_specific_data.error)
    assert result.get_asset_check_evaluations() == []
    assert not (lake_home / layout.bronze_data_key("legacy_requests", 2022)).exists()


def test_rejected_rows_raise_a_warning_naming_the_rejects_file(local_defs, dagster_instance, portal):
    lines = portal.file_for(LEGACY_2022_ID).read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b"2022-01", b"not-a-date", 1)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines))
    result = run(local_defs, dagster_instance, "legacy_requests", year="2022")
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["no_rejected_rows"].passed and checks["no_rejected_rows"].severity.value == "WARN"
    assert (
        "2022: 1 rows rejected, see _meta/bronze/boston311/legacy_requests/year=2022/_rejects.csv"
        in checks["no_rejected_rows"].description
    )
    assert checks["rows_reconcile_with_raw"].passed
    assert materializations(result, "bronze/legacy_requests")["2022"]["rejects"].value == 1


@pytest.mark.slow
def test_a_refresh_of_unchanged_years_logs_one_line_per_step_not_one_per_year(local_defs, dagster_instance, portal):
    assert run(local_defs, dagster_instance, "legacy_requests", years=("2013", "2016")).success
    again = run(local_defs, dagster_instance, "legacy_requests", years=("2013", "2016"))
    assert again.success
    assert {meta["changed"].value for meta in materializations(again, "raw/legacy_requests").values()} == {False}
    lines = [entry.user_message for entry in dagster_instance.all_logs(again.run_id) if entry.dagster_event is None]
    by_year = [line for line in lines if line.startswith("legacy_requests 201")]
    assert by_year == [
        "legacy_requests 2013-2016: unchanged, the portal's metadata (last_modified, hash, size) is that of the "
        "stored file",
        "legacy_requests 2013-2016: unchanged, already built from this raw file (same sha256) by this converter "
        "version",
    ]
