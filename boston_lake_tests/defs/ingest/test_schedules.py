"""The daily refresh: which years each schedule asks for, and that its run refreshes them on a real instance."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterInstance, build_schedule_context

from boston_lake.defs.keys import RANGE_END, RANGE_START

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
BOSTON = ZoneInfo("America/New_York")


def tick(defs, table, morning):
    """One tick as the daemon evaluates it, with the code location's resources (the portal client)."""
    schedule = defs.resolve_schedule_def(f"refresh_{table}")
    with (
        DagsterInstance.ephemeral() as instance,
        build_schedule_context(
            instance=instance,
            scheduled_execution_time=morning,
            repository_def=defs.get_repository_def(),
            resources=defs.resources,
        ) as context,
    ):
        return schedule, schedule.evaluate_tick(context)


def morning_request(defs, table, morning):
    schedule, result = tick(defs, table, morning)
    (request,) = result.run_requests
    return schedule, request


def covered(request) -> tuple[str, str]:
    return request.tags[RANGE_START], request.tags[RANGE_END]


@pytest.mark.parametrize(
    "table,day,offered,years",
    [
        ("legacy_requests", datetime(2026, 11, 22, 6, tzinfo=BOSTON), (), ("2025", "2026")),
        ("legacy_requests", datetime(2027, 1, 1, 6, tzinfo=BOSTON), (2027,), ("2026", "2027")),
        # New Year's morning, before the city publishes the new year's file: last year alone.
        ("legacy_requests", datetime(2027, 1, 1, 6, tzinfo=BOSTON), (2026,), ("2026", "2026")),
        ("new_system_requests", datetime(2026, 11, 22, 6, tzinfo=BOSTON), (), ("2025", "2026")),
        ("new_system_requests", datetime(2027, 1, 1, 6, tzinfo=BOSTON), (), ("2025", "2027")),
    ],
)
def test_each_morning_refreshes_every_year_whose_source_can_still_change(
    local_defs, portal, table, day, offered, years
):
    for year in offered:
        portal.offer_legacy_year(year)
    schedule, request = morning_request(local_defs, table, day)
    assert schedule.execution_timezone == "America/New_York" and schedule.cron_schedule == "0 6 * * *"
    assert schedule.default_status.value == "RUNNING"
    assert covered(request) == years and request.run_key == f"{table}:{day.date().isoformat()}"
    job = local_defs.resolve_job_def(schedule.job_name)
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        f"raw/{table}",
        f"bronze/{table}",
    }
    assert years[1] in job.partitions_def.get_partition_keys(current_time=day)


def test_a_morning_whose_years_the_portal_does_not_publish_is_skipped_with_the_reason(local_defs, portal):
    portal.withdraw_legacy_years(2014, 2015, 2016, 2017, 2018, 2019, 2020, 2021, 2024, 2025, 2026)
    _, result = tick(local_defs, "legacy_requests", datetime(2026, 11, 22, 6, tzinfo=BOSTON))
    assert not result.run_requests
    assert result.skip_message == (
        "the portal publishes no legacy_requests file for 2025 or 2026 (it offers 2011, 2012, 2013, 2022, 2023); "
        "nothing to refresh"
    )


def run_request(defs, instance, schedule, request):
    """What the daemon launches for the tick: the schedule's job with the request's tags."""
    result = defs.resolve_job_def(schedule.job_name).execute_in_process(
        instance=instance, tags=dict(request.tags), run_config=QUIET
    )
    assert result.success
    return {
        (m.asset_key.to_user_string(), m.partition): m.metadata["changed"].value
        for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
    }


def test_the_legacy_refresh_updates_the_previous_year_too(local_defs, dagster_instance, portal):
    schedule, request = morning_request(local_defs, "legacy_requests", datetime(2026, 1, 10, 6, tzinfo=BOSTON))
    assert run_request(local_defs, dagster_instance, schedule, request) == {
        ("raw/legacy_requests", "2025"): True,
        ("raw/legacy_requests", "2026"): True,
        ("bronze/legacy_requests", "2025"): True,
        ("bronze/legacy_requests", "2026"): True,
    }
    # The city republishes last year's file with a case closed in January: tomorrow's refresh picks it up.
    path = portal.file_for(portal.legacy_resource_id(2025))
    path.write_bytes(path.read_bytes().replace(b",Open,", b",Closed,", 1))
    changes = run_request(local_defs, dagster_instance, schedule, request)
    assert changes[("bronze/legacy_requests", "2025")] is True and changes[("bronze/legacy_requests", "2026")] is False


def test_the_new_system_refresh_covers_every_year_and_an_unchanged_morning_writes_nothing(
    local_defs, dagster_instance, lake_home
):
    schedule, request = morning_request(local_defs, "new_system_requests", datetime(2026, 11, 22, 6, tzinfo=BOSTON))
    first = run_request(local_defs, dagster_instance, schedule, request)
    assert set(first.values()) == {True} and len(first) == 4
    files = {p: p.stat().st_mtime_ns for p in lake_home.rglob("*") if p.is_file() and ".staging" not in p.parts}
    assert set(run_request(local_defs, dagster_instance, schedule, request).values()) == {False}
    assert {p: p.stat().st_mtime_ns for p in files} == files
