"""The offline demo: every year the sample portal offers, materialized through Dagster's own jobs, then
crawled and built into silver and gold as the sensors would have it, queried with SQL over the catalog, and
written up as the offline report.

Every step after ingest is decided from what the demo's Dagster home holds, not from what this process did: a
demo interrupted (Ctrl-C) and run again crawls, builds silver and builds gold for every year the first run left
undone.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, Definitions, build_sensor_context
from tabulate import tabulate

from boston_lake.definitions import build_definitions
from boston_lake.defs.automation import contiguous_blocks
from boston_lake.defs.gold import GOLD_AUTOMATION, GOLD_JOB, gold_key
from boston_lake.defs.keys import RANGE_END, RANGE_START, SILVER_KEY, ingest_job_name, partition_tags
from boston_lake.defs.partitions import partitions_for
from boston_lake.formatting import format_result
from boston_lake.lake.answers.report import write_report
from boston_lake.lake.settings import Settings
from boston_lake.lake.source.portal import CkanPortal
from boston_lake.lake.tables import TABLES, LakeTable
from boston_lake.lake.targets import build_target
from boston_lake.lake.zones.gold import GOLD_TABLES
from boston_lake.lake.zones.raw import offered_years
from boston_lake.lake.zones.status import lake_status

# Dagster's tag of a run a sensor launched: the UI shows "Launched by" that sensor instead of "Manually launched".
SENSOR_TAG = "dagster/sensor_name"
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
DEMO_QUERIES = (
    "SELECT year, count(*) AS cases, count(sla_target_dt) AS with_sla_target, count(target_dt) AS with_v1_target "
    "FROM boston311.legacy_requests GROUP BY year ORDER BY year",
    "SELECT neighborhood, count(*) AS cases FROM boston311.new_system_requests WHERE year = '2025' "
    "GROUP BY neighborhood ORDER BY cases DESC LIMIT 5",
    # Silver: every generation in one table, with true UTC times (the local open hour is Boston's).
    "SELECT year, source_generation, count(*) AS cases, count(closed_at) AS closed, "
    "min(opened_at) AS first_opened_utc, "
    "round(avg(hour(opened_at AT TIME ZONE 'America/New_York')), 1) AS mean_local_open_hour "
    "FROM boston311.service_requests GROUP BY year, source_generation ORDER BY year, source_generation",
)


def demo_runs(table: LakeTable, portal: CkanPortal) -> list[dict[str, str]]:
    """Run tags per run: one range run over the years the portal offers, as a UI backfill of them launches it
    (raw and bronze run each year in one process: the package metadata is read once). A split table is cut from
    one resource, so it is offered whole; a gap in the offered years starts another range, since a year the
    portal does not publish would skip bronze for every year of a run of raw and bronze together."""
    if table.split_by_year:
        years = [int(key) for key in partitions_for(table).get_partition_keys()]
    else:
        years = offered_years(portal.resources(), table)
    return [partition_tags(first, last) for first, last in contiguous_blocks(years)]


Interrupted = Callable[[], bool]


@contextmanager
def _interrupts_heard() -> Iterator[Interrupted]:
    """Whether Ctrl-C (or a TERM) came since the last ask. A run in process hands SIGINT to Dagster, which forgets
    one that comes after the run's last check for it: the run then ends as if nothing happened, and the demo would
    go on. The signal module's wakeup fd hears every signal, whichever handler takes it."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        yield lambda: False
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def heard() -> bool:
        try:
            received = reader.recv(1024)
        except BlockingIOError:
            return False
        return signal.SIGINT in received or signal.SIGTERM in received

    try:
        yield heard
    finally:
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()


def _execute(
    definitions: Definitions, instance: DagsterInstance, job_name: str, tags: dict[str, str], interrupted: Interrupted
) -> bool:
    years = tags.get("dagster/partition") or f"{tags[RANGE_START]}..{tags[RANGE_END]}"
    print(f"{job_name} {years} ...", flush=True)
    result = definitions.resolve_job_def(job_name).execute_in_process(
        run_config=QUIET_LOGS, instance=instance, tags=tags, raise_on_error=False
    )
    if not result.success:
        print(f"run {result.run_id} failed; see the log above, or the run in the Dagster UI", flush=True)
    elif interrupted():
        print(f"interrupted after run {result.run_id}; the same command finishes what is left", flush=True)
        return False
    return result.success


def _run_sensor_tick(
    definitions: Definitions, instance: DagsterInstance, sensor_name: str, interrupted: Interrupted
) -> bool:
    """Evaluate one tick of a sensor and run what it requests, in process, as the daemon would launch it."""
    tick = definitions.resolve_sensor_def(sensor_name).evaluate_tick(
        build_sensor_context(instance=instance, definitions=definitions)
    )
    for request in tick.run_requests or []:
        if request.job_name is None:
            raise RuntimeError(f"sensor {sensor_name} requested a run without a job: {request}")
        if not _execute(
            definitions, instance, request.job_name, {**request.tags, SENSOR_TAG: sensor_name}, interrupted
        ):
            return False
    return True


def gold_requests(instance: DagsterInstance) -> list[dict[str, str]]:
    """The gold years behind their silver year, as run tags: a silver year materialized after the newest build of
    either gold table's year, or with no gold build at all.

    That is what the automation sensor builds as silver lands; asking the instance rather than evaluating the
    sensor's condition also finds the years an interrupted demo left without gold, which the condition, seeing
    no new silver since its first tick, would never request again.
    """
    silver = instance.get_latest_storage_id_by_partition(SILVER_KEY, DagsterEventType.ASSET_MATERIALIZATION)
    behind: set[int] = set()
    for table in GOLD_TABLES:
        gold = instance.get_latest_storage_id_by_partition(
            gold_key(table), DagsterEventType.ASSET_MATERIALIZATION, partitions=set(silver)
        )
        behind |= {int(year) for year, built in silver.items() if gold.get(year, 0) < built}
    return [{RANGE_START: str(first), RANGE_END: str(last)} for first, last in contiguous_blocks(behind)]


def run_demo(settings: Settings, report_path: Path, command: str) -> int:
    """Build the demo lake and show it; `command` is `boston-lake --home <lake>` as the reader can paste it."""
    definitions = build_definitions(settings)
    portal = CkanPortal(settings.portal_url)
    with DagsterInstance.get() as instance, _interrupts_heard() as interrupted:
        for table in TABLES:
            for tags in demo_runs(table, portal):
                if not _execute(definitions, instance, ingest_job_name(table), tags, interrupted):
                    return 1
        # What the daemon does on its next ticks: the crawl sensor turns every landed year not yet crawled into
        # crawl runs, the silver sensor rebuilds every silver year older than a bronze year it reads, and gold
        # follows silver.
        for sensor_name in ("crawl_landed_bronze", "rebuild_silver_on_bronze_change"):
            if not _run_sensor_tick(definitions, instance, sensor_name, interrupted):
                return 1
        for tags in gold_requests(instance):
            gold_tags = {**tags, SENSOR_TAG: GOLD_AUTOMATION.name}
            if not _execute(definitions, instance, GOLD_JOB.name, gold_tags, interrupted):
                return 1
    target = build_target(settings)
    rows = [status.as_row() for status in lake_status(target.raw_zone(), target.lake_zone(), TABLES)]
    print("\nthe lake, per table and year:")
    print(tabulate(rows, headers="keys", tablefmt="github"))
    for sql in DEMO_QUERIES:
        print(f'\n{command} query "{sql}"')
        print(format_result(target.query(sql), "table"))
    written = write_report(report_path, target)
    print(f"\nthe lake's answers at a glance, one file that opens with no network: {written}")
    return 0
