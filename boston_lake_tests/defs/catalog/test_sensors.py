"""The crawler sensor against a real instance: every landed year is crawled, once, in as few runs as can be."""

import json
import uuid

import pytest
from dagster import DagsterRun, DagsterRunStatus, build_sensor_context

from boston_lake.defs.automation import ATTEMPT, LANDING, contiguous_blocks
from boston_lake.defs.catalog.sensors import CRAWL_TABLE_TAG
from boston_lake.defs.keys import RANGE_END, RANGE_START
from boston_lake_tests.support.portal import LEGACY_2022_ID, NEW_SYSTEM_ID

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def ingest(defs, instance, table, *, year=None, years=None):
    tags = {RANGE_START: years[0], RANGE_END: years[1]} if years else {}
    result = defs.resolve_job_def(f"ingest_{table}").execute_in_process(
        instance=instance, partition_key=year, tags=tags, run_config=QUIET
    )
    assert result.success


def tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("crawl_landed_bronze")
    return sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs, cursor=cursor))


def covered_years(request) -> list[int]:
    tags = request.tags
    if "dagster/partition" in tags:
        return [int(tags["dagster/partition"])]
    return list(range(int(tags[RANGE_START]), int(tags[RANGE_END]) + 1))


@pytest.mark.slow
def test_three_years_landing_between_ticks_are_one_crawl(local_defs, dagster_instance, portal):
    for year in (2021, 2022, 2023):
        ingest(local_defs, dagster_instance, "legacy_requests", year=str(year))
    (request,) = tick(local_defs, dagster_instance).run_requests
    assert request.job_name == "crawl_legacy_requests" and covered_years(request) == [2021, 2022, 2023]
    assert request.tags[CRAWL_TABLE_TAG] == "legacy_requests"
    result = local_defs.resolve_job_def(request.job_name).execute_in_process(
        instance=dagster_instance, tags=dict(request.tags), run_config=QUIET
    )
    assert result.success
    crawled = {e.event_specific_data.materialization.partition for e in result.get_asset_materialization_events()}
    assert crawled == {"2021", "2022", "2023"}


def test_years_crawled_already_are_not_crawled_again_with_a_fresh_cursor(local_defs, dagster_instance, portal):
    # The demo crawls in-process; `make demo-ui` then starts the daemon, whose sensor has no cursor yet.
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    (request,) = tick(local_defs, dagster_instance).run_requests
    assert (
        local_defs.resolve_job_def(request.job_name)
        .execute_in_process(instance=dagster_instance, tags=dict(request.tags), run_config=QUIET)
        .success
    )
    fresh = tick(local_defs, dagster_instance)
    assert not fresh.run_requests
    assert fresh.skip_message == "every bronze year that landed is crawled or has a crawl requested"
    lines = portal.file_for(LEGACY_2022_ID).read_bytes().splitlines(keepends=True)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines[:1] + lines[:0:-1]))  # republished (rows reordered), so it
    # lands changed and is crawled again
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    (again,) = tick(local_defs, dagster_instance, cursor=fresh.cursor).run_requests
    assert covered_years(again) == [2022]


def test_a_single_run_backfill_of_five_years_is_one_crawl_of_five(local_defs, dagster_instance, portal):
    ingest(local_defs, dagster_instance, "legacy_requests", years=("2013", "2017"))
    (request,) = tick(local_defs, dagster_instance).run_requests
    assert covered_years(request) == [2013, 2014, 2015, 2016, 2017]


def test_no_second_crawl_while_one_is_in_flight_and_nothing_is_lost(local_defs, dagster_instance):
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    in_flight = DagsterRun(
        job_name="crawl_legacy_requests",
        run_id=str(uuid.uuid4()),
        status=DagsterRunStatus.STARTED,
        tags={CRAWL_TABLE_TAG: "legacy_requests"},
    )
    dagster_instance.add_run(in_flight)
    waiting = tick(local_defs, dagster_instance)
    assert waiting.run_requests == []
    assert f"wait for crawl run {in_flight.run_id[:8]} (STARTED)" in waiting.skip_message
    dagster_instance.report_run_canceled(in_flight)
    (request,) = tick(local_defs, dagster_instance, cursor=waiting.cursor).run_requests
    assert covered_years(request) == [2022]


@pytest.mark.slow
def test_a_restarted_sensor_resumes_from_its_cursor(local_defs, dagster_instance):
    ingest(local_defs, dagster_instance, "legacy_requests", year="2013")
    first = tick(local_defs, dagster_instance)
    assert [covered_years(r) for r in first.run_requests] == [[2013]]
    # A new context with the stored cursor is what a restarted daemon evaluates.
    assert tick(local_defs, dagster_instance, cursor=first.cursor).run_requests == []
    ingest(local_defs, dagster_instance, "legacy_requests", year="2023")
    ingest(local_defs, dagster_instance, "new_system_requests", years=("2025", "2026"))
    later = tick(local_defs, dagster_instance, cursor=first.cursor)
    assert sorted((r.job_name, tuple(covered_years(r))) for r in later.run_requests) == [
        ("crawl_legacy_requests", (2023,)),
        ("crawl_new_system_requests", (2025, 2026)),
    ]
    assert set(json.loads(later.cursor)) == {"legacy_requests", "new_system_requests"}


def test_nothing_landed_says_so(local_defs, dagster_instance):
    result = tick(local_defs, dagster_instance)
    assert result.run_requests == [] and "no bronze partition landed" in result.skip_message


@pytest.mark.parametrize(
    "years,blocks", [([2013, 2022, 2023], [(2013, 2013), (2022, 2023)]), ([2011, 2012, 2013], [(2011, 2013)]), ([], [])]
)
def test_contiguous_blocks(years, blocks):
    assert contiguous_blocks(years) == blocks


@pytest.mark.slow
def test_a_refresh_that_changed_nothing_requests_no_crawl(local_defs, dagster_instance, portal):
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    first = tick(local_defs, dagster_instance)
    assert [covered_years(r) for r in first.run_requests] == [[2022]]
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")  # the daily refresh: same file
    unchanged = tick(local_defs, dagster_instance, cursor=first.cursor)
    assert unchanged.run_requests == []
    assert "legacy_requests years [2022] were refreshed unchanged: nothing to crawl" in unchanged.skip_message
    assert tick(local_defs, dagster_instance, cursor=unchanged.cursor).run_requests == []  # the cursor moved on
    lines = portal.file_for(LEGACY_2022_ID).read_bytes().splitlines(keepends=True)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines[:1] + lines[:0:-1]))  # the city republishes the year
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    (changed,) = tick(local_defs, dagster_instance, cursor=unchanged.cursor).run_requests
    assert covered_years(changed) == [2022]


@pytest.mark.slow
def test_of_a_refreshed_range_only_the_years_that_changed_are_crawled(local_defs, dagster_instance, portal):
    ingest(local_defs, dagster_instance, "new_system_requests", years=("2025", "2026"))
    first = tick(local_defs, dagster_instance)
    assert [covered_years(r) for r in first.run_requests] == [[2025, 2026]]
    data = portal.file_for(NEW_SYSTEM_ID).read_bytes()
    opened_2026 = next(line for line in data.split(b"\r\n") if b",2026-" in line[:20])
    new_case = b"BCS-99999999" + opened_2026[opened_2026.index(b",") :]
    portal.replace_file(NEW_SYSTEM_ID, data.rstrip(b"\r\n") + b"\r\n" + new_case + b"\r\n")  # a case opened
    ingest(local_defs, dagster_instance, "new_system_requests", years=("2025", "2026"))
    later = tick(local_defs, dagster_instance, cursor=first.cursor)
    assert [covered_years(r) for r in later.run_requests] == [[2026]]


@pytest.mark.slow
def test_a_year_whose_new_version_is_refused_never_lands_and_is_not_crawled(local_defs, dagster_instance, portal):
    def ingest_refused(tags):
        result = local_defs.resolve_job_def("ingest_legacy_requests").execute_in_process(
            instance=dagster_instance, tags=tags, run_config=QUIET, raise_on_error=False
        )
        assert not result.success  # the staged year failed its audit: the run fails, nothing is published
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "case_id_present_and_unique" in str(failure.event_specific_data.error)

    good = portal.file_for(LEGACY_2022_ID).read_bytes()
    lines = good.splitlines(keepends=True)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines + lines[1:3]))  # two case ids twice
    ingest_refused({"dagster/partition": "2022"})
    alone = tick(local_defs, dagster_instance)
    assert alone.run_requests == []
    assert alone.skip_message == "no bronze partition landed since the last tick"
    ingest_refused({RANGE_START: "2022", RANGE_END: "2023"})  # 2022 is refused again, 2023 lands
    mixed = tick(local_defs, dagster_instance, cursor=alone.cursor)
    assert [covered_years(request) for request in mixed.run_requests] == [[2023]]
    portal.replace_file(LEGACY_2022_ID, good)  # the city fixes its file: 2022 lands changed and passes
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    (repaired,) = tick(local_defs, dagster_instance, cursor=mixed.cursor).run_requests
    assert covered_years(repaired) == [2022]


def run(defs, instance, request):
    return defs.resolve_job_def(request.job_name).execute_in_process(
        instance=instance, tags=dict(request.tags), run_config=QUIET, raise_on_error=False
    )


@pytest.fixture
def hidden_bronze(lake_home):
    """Moves bronze legacy 2022 out of the crawler's sight (its crawl then fails: the year is not registered),
    and back."""
    year = lake_home / "bronze" / "boston311" / "legacy_requests" / "year=2022"
    away = lake_home / "hidden-2022"

    class Hidden:
        def __enter__(self):
            year.rename(away)

        def __exit__(self, *_):
            away.rename(year)

    return Hidden()


def test_a_crawl_that_fails_is_requested_again_on_the_next_tick(local_defs, dagster_instance, hidden_bronze, capfd):
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    first = tick(local_defs, dagster_instance)
    (request,) = first.run_requests
    assert request.tags[ATTEMPT] == "1"
    with hidden_bronze:
        failed = run(local_defs, dagster_instance, request)
    assert not failed.success

    capfd.readouterr()
    retry = tick(local_defs, dagster_instance, cursor=first.cursor)
    (again,) = retry.run_requests
    assert covered_years(again) == [2022] and again.job_name == "crawl_legacy_requests"
    assert again.tags[ATTEMPT] == "2" and again.tags[LANDING] == request.tags[LANDING]
    assert again.run_key != request.run_key  # the daemon would skip a run key it has launched before
    said = f"legacy_requests years [2022] requested again (attempt 2 of 3): run {failed.run_id[:8]} ended FAILURE"
    assert said in capfd.readouterr().err  # the tick's log
    assert run(local_defs, dagster_instance, again).success
    settled = tick(local_defs, dagster_instance, cursor=retry.cursor)
    assert settled.run_requests == []
    assert settled.skip_message == "no bronze partition landed since the last tick"


@pytest.mark.slow
def test_after_three_undone_crawls_of_a_landing_the_sensor_gives_up_and_says_so(
    local_defs, dagster_instance, hidden_bronze, portal
):
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    result = tick(local_defs, dagster_instance)
    attempts = []
    with hidden_bronze:
        for attempt in ("1", "2", "3"):
            (request,) = result.run_requests
            assert request.tags[ATTEMPT] == attempt and covered_years(request) == [2022]
            if attempt == "2":  # someone cancels the retry while it waits in the queue: that counts too
                canceled = DagsterRun(job_name=request.job_name, run_id=str(uuid.uuid4()), tags=dict(request.tags))
                dagster_instance.add_run(canceled)
                dagster_instance.report_run_canceled(canceled)
                attempts.append(canceled.run_id)
            else:
                attempts.append(run(local_defs, dagster_instance, request).run_id)
            result = tick(local_defs, dagster_instance, cursor=result.cursor)
    assert [r.status for r in map(dagster_instance.get_run_by_id, attempts)] == [
        DagsterRunStatus.FAILURE,
        DagsterRunStatus.CANCELED,
        DagsterRunStatus.FAILURE,
    ]
    assert result.run_requests == []
    assert result.skip_message == (
        f"legacy_requests years [2022] given up after 3 attempts, the last run {attempts[-1][:8]} ended FAILURE: "
        "not requested again until they land changed again, or someone materializes them"
    )
    assert tick(local_defs, dagster_instance, cursor=result.cursor).run_requests == []  # it stays given up

    served = portal.file_for(LEGACY_2022_ID).read_bytes()
    portal.replace_file(LEGACY_2022_ID, served.replace(b"2022-01-2", b"2022-02-2"))  # republished: a new landing
    ingest(local_defs, dagster_instance, "legacy_requests", year="2022")
    (fresh,) = tick(local_defs, dagster_instance, cursor=result.cursor).run_requests
    assert covered_years(fresh) == [2022] and fresh.tags[ATTEMPT] == "1"
    assert run(local_defs, dagster_instance, fresh).success
