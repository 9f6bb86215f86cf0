"""The daily housekeeping job through Dagster, on the embedded target's silver and gold Iceberg tables."""

import pytest

from boston_lake.lake.targets import LocalTarget
from boston_lake_tests.support.silver_samples import write_silver_samples


@pytest.mark.slow
def test_the_housekeeping_job_expires_nothing_young_and_removes_a_file_no_snapshot_reads(
    local_defs, dagster_instance, lake_home
):
    write_silver_samples(lake_home)
    tables = LocalTarget(lake_home).iceberg()
    snapshots = [s.snapshot_id for s in tables.table("service_requests").snapshots()]
    unread = tables.data_key("silver", "service_requests", 2025)
    tables.store.put_bytes(unread, b"a file a failed commit left")

    result = local_defs.resolve_job_def("iceberg_housekeeping").execute_in_process(instance=dagster_instance)
    assert result.success
    assert not tables.store.exists(unread)
    assert [s.snapshot_id for s in tables.table("service_requests").snapshots()] == snapshots
    logged = [
        event.message
        for event in dagster_instance.all_logs(result.run_id)
        if event.message and "snapshots expired" in event.message
    ]
    assert logged == [
        f"service_requests: 0 snapshots expired, {len(snapshots)} kept, 1 unread files removed, "
        "0 snapshot index rows dropped"
    ]
    schedule = local_defs.resolve_schedule_def("iceberg_housekeeping_daily")
    assert schedule.job_name == "iceberg_housekeeping" and schedule.default_status.value == "RUNNING"
