"""The silver asset through Dagster on the embedded target: from the sample portal to a SQL query, kept current
by its sensor."""

import pytest
from dagster import build_sensor_context

from boston_lake.defs.automation import ATTEMPT
from boston_lake.defs.keys import RANGE_END, RANGE_START, SILVER_KEY
from boston_lake.lake import layout
from boston_lake_tests.support.portal import LEGACY_2022_ID

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def ingest(defs, instance, table, accept_shrink="", **partition):
    tags = {RANGE_START: partition["years"][0], RANGE_END: partition["years"][1]} if "years" in partition else {}
    config = {**QUIET, "ops": {f"bronze__{table}": {"config": {"accept_shrink": accept_shrink}}}}
    result = defs.resolve_job_def(f"ingest_{table}").execute_in_process(
        instance=instance, partition_key=partition.get("year"), tags=tags, run_config=config
    )
    assert result.success


def tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("rebuild_silver_on_bronze_change")
    return sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs, cursor=cursor))


def covered(request) -> list[int]:
    tags = request.tags
    if "dagster/partition" in tags:
        return [int(tags["dagster/partition"])]
    return list(range(int(tags[RANGE_START]), int(tags[RANGE_END]) + 1))


def execute(defs, instance, request):
    return defs.resolve_job_def(request.job_name).execute_in_process(
        instance=instance, tags=dict(request.tags), run_config=QUIET, raise_on_error=False
    )


def partition_metadata(result, year):
    return next(
        e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.event_specific_data.materialization.partition == str(year)
    )


@pytest.mark.slow
def test_bronze_that_lands_builds_silver_which_sql_reads_across_generations(local_defs, dagster_instance):
    for year in ("2013", "2022", "2023"):
        ingest(local_defs, dagster_instance, "legacy_requests", year=year)
    ingest(local_defs, dagster_instance, "new_system_requests", years=("2025", "2026"))

    result = tick(local_defs, dagster_instance)
    assert [covered(request) for request in result.run_requests] == [[2012, 2013, 2014], list(range(2021, 2027))]
    runs = [execute(local_defs, dagster_instance, request) for request in result.run_requests]
    assert all(run.success for run in runs)
    checks = [check for run in runs for check in run.get_asset_check_evaluations()]
    assert {check.check_name for check in checks} == {
        "case_id_unique",
        "bronze_cases_placed_once",
        "local_hour_trough_at_night",
        "withdrawn_cases_reported",
    }
    assert all(check.passed for check in checks), [c.description for c in checks if not c.passed]

    meta = partition_metadata(runs[1], 2022)
    assert meta["dagster/row_count"].value == 100 and meta["rows_by_generation"].value == {"v1": 100}
    assert "legacy_requests 2021: bronze not built" in meta["read_as_empty"].value
    assert meta["duplicates_merged"].value == 0 and meta["candidate_rows"].value == 100
    assert "| 2022-01 | 100 |" in meta["cases_per_month"].value
    columns = {c.name: c.description for c in meta["dagster/column_schema"].schema.columns}
    assert "true UTC instant" in columns["opened_at"] and list(columns)[-1] == "year"

    counts = local_defs.resources["catalog"].query(
        "SELECT source_generation, count(*) AS cases, count(DISTINCT year) AS years "
        "FROM boston311.service_requests GROUP BY source_generation ORDER BY source_generation"
    )
    assert counts.to_pylist() == [
        {"source_generation": "new_system", "cases": 5473, "years": 2},
        {"source_generation": "v1", "cases": 100, "years": 1},
        {"source_generation": "v2", "cases": 1400, "years": 2},
    ]
    assert tick(local_defs, dagster_instance, cursor=result.cursor).run_requests == []


@pytest.mark.slow
def test_unchanged_bronze_rebuilds_nothing_and_a_republished_year_rebuilds_its_neighbours(
    local_defs, dagster_instance, portal
):
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    first = tick(local_defs, dagster_instance)
    assert [covered(r) for r in first.run_requests] == [[2021, 2022, 2023]]

    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")  # the portal has nothing new
    unchanged = tick(local_defs, dagster_instance, cursor=first.cursor)
    assert unchanged.run_requests == [] and "no bronze year changed" in unchanged.skip_message

    lines = portal.file_for(LEGACY_2022_ID).read_bytes().splitlines(keepends=True)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines[:61]))
    ingest(local_defs, dagster_instance, "legacy_requests", "the city republished 2022 with 60 rows", year="2022")
    republished = tick(local_defs, dagster_instance, cursor=unchanged.cursor)
    (request,) = republished.run_requests
    assert covered(request) == [2021, 2022, 2023]
    run = execute(local_defs, dagster_instance, request)
    assert run.success and partition_metadata(run, 2022)["dagster/row_count"].value == 60
    # Built since: a fresh cursor (the daemon's first tick after `make demo`) requests no rebuild.
    fresh = tick(local_defs, dagster_instance)
    assert fresh.run_requests == []
    assert fresh.skip_message == "every silver year reading a bronze year that changed is built or requested"


@pytest.mark.slow
def test_a_silver_run_that_fails_is_requested_again_until_three_attempts_then_the_tick_says_it_gave_up(
    local_defs, dagster_instance, lake_home, capfd
):
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    bronze = lake_home / "bronze" / "boston311" / "legacy_requests" / "year=2022" / "part-00000.parquet"
    good = bronze.read_bytes()
    bronze.write_bytes(good[: len(good) // 2])  # cut short after it landed: silver cannot read it
    result = tick(local_defs, dagster_instance)
    runs = []
    for attempt in ("1", "2", "3"):
        (request,) = result.run_requests
        assert covered(request) == [2021, 2022, 2023] and request.tags[ATTEMPT] == attempt
        runs.append(execute(local_defs, dagster_instance, request))
        assert not runs[-1].success
        capfd.readouterr()
        result = tick(local_defs, dagster_instance, cursor=result.cursor)
        if attempt != "3":
            said = f"silver years [2021, 2022, 2023] requested again (attempt {int(attempt) + 1} of 3): run "
            assert f"{said}{runs[-1].run_id[:8]} ended FAILURE" in capfd.readouterr().err  # the tick's log
    assert result.run_requests == []
    assert result.skip_message == (
        f"silver years [2021, 2022, 2023] given up after 3 attempts, the last run {runs[-1].run_id[:8]} ended "
        "FAILURE: not requested again until they land changed again, or someone materializes them; "
        "no bronze year changed since the last tick"
    )

    # Repaired: a normal run finds the year damaged and rebuilds it, and its landing is requested afresh. (Writing
    # the good bytes back by hand would repair it too, but that is the very object bronze published, known by its
    # content: nothing to rebuild, and nothing lands.)
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    assert bronze.read_bytes() != good[: len(good) // 2]
    (fresh,) = tick(local_defs, dagster_instance, cursor=result.cursor).run_requests
    assert covered(fresh) == [2021, 2022, 2023] and fresh.tags[ATTEMPT] == "1"
    assert execute(local_defs, dagster_instance, fresh).success


def build_silver(defs, instance, first, last, **config):
    run_config = {**QUIET, "ops": {"silver__service_requests": {"config": config}}} if config else QUIET
    return defs.resolve_job_def("build_silver_service_requests").execute_in_process(
        instance=instance, tags={RANGE_START: first, RANGE_END: last}, run_config=run_config, raise_on_error=False
    )


@pytest.mark.slow
def test_a_silver_year_that_would_shrink_is_refused_while_its_neighbours_are_built(
    local_defs, dagster_instance, portal, lake_home
):
    ingest(local_defs, dagster_instance, "legacy_requests", years=("2021", "2023"))
    assert build_silver(local_defs, dagster_instance, "2021", "2023").success
    lines = portal.file_for(LEGACY_2022_ID).read_bytes().splitlines(keepends=True)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines[:61]))
    ingest(local_defs, dagster_instance, "legacy_requests", "the city republished 2022 with 60 rows", year="2022")

    refused = build_silver(local_defs, dagster_instance, "2021", "2023")
    assert not refused.success
    failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
    data = failure.event_specific_data.user_failure_data
    kept = lake_home / layout.refused_prefix("silver", "service_requests", 2022) / layout.BRONZE_FILE
    assert (
        "silver/service_requests 2022: not published, shrink_within_limit refused the staged version: published "
        "100 rows, 100 case ids, staged 60 rows, 60 case ids; 40 rows lost (40%), 40 case ids vanished"
    ) in data.description
    assert {name: data.metadata[name].value for name in ("check", "year", "refused_uri", "stored_years")} == {
        "check": "shrink_within_limit",
        "year": 2022,
        "refused_uri": str(kept),
        "stored_years": [2021, 2023],
    }
    stored = dagster_instance.get_materialized_partitions(SILVER_KEY)
    assert stored == {"2021", "2022", "2023"}  # 2022 from the first run, 2021 and 2023 from both
    query = "SELECT count(*) AS n FROM boston311.service_requests WHERE year = '2022'"
    assert local_defs.resources["catalog"].query(query).to_pylist() == [{"n": 100}]

    accepted = build_silver(local_defs, dagster_instance, "2022", "2022", accept_shrink="bronze 2022 has 60 cases")
    assert accepted.success
    meta = partition_metadata(accepted, 2022)
    # Silver keeps the 40 cases the source withdrew, marked with withdrawn_at; accepting publishes their withdrawal.
    assert meta["dagster/row_count"].value == 100 and meta["withdrawn_cases"].value == 40
    assert meta["shrink_accepted"].value["reason"] == "bronze 2022 has 60 cases"
    live = query.replace("WHERE", "WHERE withdrawn_at IS NULL AND")
    assert local_defs.resources["catalog"].query(query).to_pylist() == [{"n": 100}]
    assert local_defs.resources["catalog"].query(live).to_pylist() == [{"n": 60}]
    assert not kept.exists()


@pytest.mark.slow
def test_a_silver_year_that_holds_no_case_is_observed_not_materialized_and_the_checks_still_judge_the_others(
    local_defs, dagster_instance
):
    ingest(local_defs, dagster_instance, "legacy_requests", year="2013")  # no bronze of 2010-2012: 2011 has no case
    result = build_silver(local_defs, dagster_instance, "2011", "2013")
    assert result.success
    built = {e.event_specific_data.materialization.partition for e in result.get_asset_materialization_events()}
    assert "2011" not in built and "2013" in built
    assert dagster_instance.get_materialized_partitions(SILVER_KEY) == built
    observed = {
        e.asset_observation_data.asset_observation.partition: e.asset_observation_data.asset_observation
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }
    assert observed.keys() == {"2011", "2012", "2013"} - built
    assert observed["2011"].metadata["rows"].value == 0
    assert observed["2011"].description.startswith(
        "silver/service_requests 2011: no rows, not materialized: no case opened in 2011 is in the bronze it reads"
    )
    # The build that observed the empty years followed the landing: the sensor asks only for 2014, never built.
    assert [covered(request) for request in tick(local_defs, dagster_instance).run_requests] == [[2014]]
    checks = result.get_asset_check_evaluations()
    assert sorted(check.check_name for check in checks) == [
        "bronze_cases_placed_once",
        "case_id_unique",
        "local_hour_trough_at_night",
        "withdrawn_cases_reported",
    ]
    assert all(check.passed for check in checks), [c.description for c in checks if not c.passed]
