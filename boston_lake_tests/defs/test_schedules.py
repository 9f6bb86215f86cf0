from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterInstance, build_schedule_context

BOSTON = ZoneInfo("America/New_York")


def tick(defs, schedule, morning):
    """One tick as the daemon evaluates it, with the code location's resources (the portal client)."""
    with (
        DagsterInstance.ephemeral() as instance,
        build_schedule_context(
            instance=instance,
            scheduled_execution_time=morning,
            repository_def=defs.get_repository_def(),
            resources=defs.resources,
        ) as context,
    ):
        return schedule.evaluate_tick(context)


@pytest.mark.parametrize("table", ["legacy_requests", "new_system_requests"])
def test_the_daily_refresh_targets_the_running_year_of_each_table(local_defs, portal, table):
    portal.offer_legacy_year(2026)
    schedule = local_defs.resolve_schedule_def(f"refresh_{table}_current_year")
    assert schedule.execution_timezone == "America/New_York" and schedule.cron_schedule == "0 6 * * *"
    assert schedule.default_status.value == "RUNNING"
    (request,) = tick(local_defs, schedule, datetime(2026, 11, 22, 6, tzinfo=BOSTON)).run_requests
    assert request.partition_key == "2026" and request.run_key == f"{table}:2026-11-22"
    job = local_defs.resolve_job_def(schedule.job_name)
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        f"raw/{table}",
        f"bronze/{table}",
    }


def test_new_year_morning_refreshes_the_new_year(local_defs, portal):
    portal.offer_legacy_year(2027)
    schedule = local_defs.resolve_schedule_def("refresh_legacy_requests_current_year")
    new_year = datetime(2027, 1, 1, 6, tzinfo=BOSTON)
    (request,) = tick(local_defs, schedule, new_year).run_requests
    assert request.partition_key == "2027"
    assert "2027" in local_defs.resolve_job_def(schedule.job_name).partitions_def.get_partition_keys(
        current_time=new_year
    )


def test_a_year_the_portal_does_not_publish_is_skipped_with_the_reason(local_defs):
    schedule = local_defs.resolve_schedule_def("refresh_legacy_requests_current_year")
    result = tick(local_defs, schedule, datetime(2026, 11, 22, 6, tzinfo=BOSTON))
    assert not result.run_requests
    assert result.skip_message == (
        "the portal publishes no legacy_requests file for 2026 (it offers 2013, 2022, 2023); nothing to refresh"
    )
