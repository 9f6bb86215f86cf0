"""Catalog assets and their checks through Dagster, on the embedded catalog."""

import pytest

from boston_lake.lake import layout
from boston_lake_tests.support.portal import LEGACY_2022_ID

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run(defs, instance, job, *, year=None, years=None, run_config=None):
    tags = (
        {"dagster/asset_partition_range_start": years[0], "dagster/asset_partition_range_end": years[1]}
        if years
        else {}
    )
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        partition_key=year,
        tags=tags,
        run_config={**QUIET, **(run_config or {})},
        raise_on_error=False,
    )


def metadata(result, partition):
    return next(
        e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.event_specific_data.materialization.partition == partition
    )


def checks(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_crawling_v1_then_v2_merges_columns_and_archives_a_version(local_defs, dagster_instance):
    assert run(local_defs, dagster_instance, "ingest_legacy_requests", year="2022").success  # v1
    first = run(local_defs, dagster_instance, "crawl_legacy_requests", year="2022")
    assert first.success
    meta = metadata(first, "2022")
    assert meta["table_created"].value is True and meta["schema_version"].value == "1"
    assert meta["dagster/table_name"].value == "boston311.legacy_requests"
    assert meta["dagster/row_count"].value == 100 and meta["partition"].value == "added"
    assert all(check.passed for check in checks(first).values())

    assert run(local_defs, dagster_instance, "ingest_legacy_requests", year="2013").success  # v2
    second = run(local_defs, dagster_instance, "crawl_legacy_requests", year="2013")
    meta = metadata(second, "2013")
    assert meta["schema_changed"].value is True and meta["schema_version"].value == "2"
    assert "sla_target_dt" in meta["columns_added"].value and "geom_4326" in meta["columns_added"].value
    columns = [c.name for c in meta["dagster/column_schema"].schema.columns]
    assert "target_dt" in columns and "sla_target_dt" in columns and columns[-1] == "year"
    schema_check = checks(second)["schema_unchanged"]
    assert not schema_check.passed and schema_check.severity.value == "WARN"
    assert "sla_target_dt" in schema_check.description
    catalog = local_defs.resources["catalog"].catalog()
    assert [v["VersionId"] for v in catalog.get_table_versions("boston311", "legacy_requests")] == ["2", "1"]


def test_a_year_without_bronze_fails_the_crawl_naming_it(local_defs, dagster_instance):
    assert run(local_defs, dagster_instance, "ingest_legacy_requests", year="2022").success
    result = run(local_defs, dagster_instance, "crawl_legacy_requests", years=("2021", "2022"))
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "lacks partitions year=2021" in str(failure.event_specific_data.error)


def test_checks_catch_an_unregistered_year_and_a_stale_record_count(local_defs, dagster_instance, portal):
    assert run(local_defs, dagster_instance, "ingest_legacy_requests", year="2022").success
    assert run(local_defs, dagster_instance, "crawl_legacy_requests", year="2022").success
    lines = portal.file_for(LEGACY_2022_ID).read_bytes().splitlines(keepends=True)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines[:61]))
    accepted = {"ops": {"bronze__legacy_requests": {"config": {"accept_shrink": "the city cut 2022 to 60 rows"}}}}
    assert run(local_defs, dagster_instance, "ingest_legacy_requests", year="2022", run_config=accepted).success
    assert run(local_defs, dagster_instance, "ingest_legacy_requests", year="2023").success
    # Run the checks alone, as from the asset's Checks tab, before any crawl has seen the new data.
    only_checks = (
        local_defs.resolve_implicit_global_asset_job_def()
        .get_subset(
            asset_check_selection={
                key
                for key in local_defs.resolve_asset_graph().asset_check_keys
                if key.asset_key.path == ["catalog", "legacy_requests"]
            },
            asset_selection=set(),
        )
        .execute_in_process(instance=dagster_instance, run_config=QUIET, raise_on_error=False)
    )
    found = checks(only_checks)
    assert (
        not found["bronze_partitions_registered"].passed
        and "[2023]" in found["bronze_partitions_registered"].description
    )
    assert not found["record_count_matches_bronze"].passed
    assert "recordCount 100 != 760" in found["record_count_matches_bronze"].description


def test_query_reads_the_catalog_not_the_folders(local_defs, dagster_instance, lake_home):
    catalog = local_defs.resources["catalog"]
    assert run(local_defs, dagster_instance, "ingest_legacy_requests", year="2022").success
    with pytest.raises(Exception, match="no catalog at .*: nothing has been crawled into this lake yet"):
        catalog.query("SELECT count(*) FROM boston311.legacy_requests")
    assert run(local_defs, dagster_instance, "crawl_legacy_requests", year="2022").success
    counts = catalog.query("SELECT year, count(*) AS n FROM boston311.legacy_requests GROUP BY year")
    assert counts.to_pylist() == [{"year": "2022", "n": 100}]
    assert (lake_home / layout.bronze_data_key("legacy_requests", 2022)).exists()
