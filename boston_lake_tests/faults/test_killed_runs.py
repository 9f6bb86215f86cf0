"""Runs killed where Dagster keeps state for them: the crawler pool's slot, and the demo's years. The lake keeps
itself running: a dead run's slot is freed by the daemon, `status` says who holds a slot and who frees it, and a
re-run of an interrupted demo builds every year it left missing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from boston_lake.defs.keys import CRAWLER_POOL
from boston_lake.lake.catalog.local import LocalCatalog
from boston_lake.lake.tables import DATABASE
from boston_lake.lake.targets import LocalTarget
from boston_lake.sample_portal.server import copy_sample_data
from boston_lake_tests.faults.conftest import REPO, Lake, boston_lake
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.support.dagster_server import DagsterServer, _serve

ENDED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
WORKER = re.compile(r"Executing steps in process \(pid: (\d+)\)")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DagsterServer]:
    """`dagster dev` (webserver, daemon, code server) on the shipped .dagster_home/dagster.yaml, with one value
    lowered so the test is short: the daemon frees a dead run's slots 1 s after the run ended instead of 60 s.
    Everything else (run monitoring, its 30 s poll, the pool's limit) is the shipped instance."""
    from boston_lake_tests.support.portal import TestPortal

    shipped = (REPO / ".dagster_home" / "dagster.yaml").read_text()
    quick = re.sub(r"(?m)^(\s+free_slots_after_run_end_seconds:) \d+$", r"\1 1", shipped)
    with TestPortal(copy_sample_data(tmp_path / "portal_data")) as portal:
        yield from _serve(portal, tmp_path, instance_config=quick)


def launch_crawl(server: DagsterServer, year: int) -> str:
    return server.launch_run({"pipelineName": "crawl_legacy_requests"}, {"dagster/partition": str(year)})


def slot_holders(instance: DagsterInstance) -> set[str]:
    return {slot.run_id for slot in instance.event_log_storage.get_concurrency_info(CRAWLER_POOL).claimed_slots}


def worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The process that executes the run's steps, as the in-process executor reports it."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        found = WORKER.search(entry.message)
        if found:
            return int(found.group(1))
    return None


def status_of(instance: DagsterInstance, run_id: str) -> DagsterRunStatus | None:
    run = instance.get_run_by_id(run_id)
    return run.status if run and run.status in ENDED else None


@pytest.mark.ui
@pytest.mark.timeout(600)
@fault(
    "crash",
    "SIGKILL of a crawl while it holds the crawler pool's slot (under the daemon)",
    "run monitoring fails the run, the daemon frees its slot, and the next crawl gets the slot and completes",
    rows_lost="n/a",
)
def test_a_run_killed_holding_the_crawler_slot_does_not_jam_the_pool(daemon: DagsterServer) -> None:
    Lake(daemon.lake_home, daemon.portal).ingest(2022)  # bronze 2022 on disk, to crawl
    catalog = daemon.lake_home / "catalog" / "catalog.sqlite"
    LocalCatalog(catalog).create_database(DATABASE)
    # A writer holds the catalog, so the crawl waits inside its step, holding the pool's slot, until it is killed.
    writer = sqlite3.connect(catalog, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    with DagsterInstance.from_config(str(daemon.dagster_home)) as instance:
        killed = launch_crawl(daemon, 2022)
        daemon.wait_for(lambda: killed in slot_holders(instance), 240, f"crawl {killed} to take the slot", 0.2)
        os.kill(daemon.wait_for(lambda: worker_pid(instance, killed), 60, f"the worker of {killed}"), signal.SIGKILL)
        writer.execute("ROLLBACK")
        writer.close()

        later = launch_crawl(daemon, 2022)
        assert daemon.wait_for(lambda: status_of(instance, killed), 240, f"killed crawl {killed} to end") == (
            DagsterRunStatus.FAILURE
        )
        # Without the daemon freeing the dead run's slot, `later` waits in the queue for ever.
        assert daemon.wait_for(lambda: status_of(instance, later), 240, f"later crawl {later} to end") == (
            DagsterRunStatus.SUCCESS
        )
        assert slot_holders(instance) == set()


# A crawl of legacy 2022 run in this process on the instance at DAGSTER_HOME, as `make demo` runs its jobs.
CRAWL_IN_PROCESS = """
import sys
from dagster import DagsterInstance
from boston_lake.definitions import build_definitions
from boston_lake.lake.settings import Settings

definitions = build_definitions(Settings.from_env({"BOSTON_LAKE_HOME": sys.argv[1]}))
with DagsterInstance.get() as instance:
    definitions.resolve_job_def("crawl_legacy_requests").execute_in_process(instance=instance, partition_key="2022")
"""


def wait_until(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.slow  # a crawl and four `status` runs, each a Python process of its own
@fault(
    "crash",
    "SIGKILL of a crawl holding the crawler pool's slot, then `boston-lake status` with DAGSTER_HOME",
    "`status` lists the slot with its run and step, while the run still looks alive and once it has ended, with "
    "who frees it (run monitoring, the daemon after N s) and the command that frees it now; exit 1 only when "
    "nothing would free it",
    rows_lost="n/a",
)
def test_status_lists_a_slot_held_by_a_killed_run_and_who_frees_it(lake: Lake, tmp_path: Path) -> None:
    lake.ingest(2022)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copyfile(REPO / ".dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
    catalog = lake.home / "catalog" / "catalog.sqlite"
    LocalCatalog(catalog).create_database(DATABASE)
    writer = sqlite3.connect(catalog, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")  # the crawl waits in its step, holding the slot, until it is killed
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(dagster_home)}
    with DagsterInstance.from_config(str(dagster_home)) as instance, (tmp_path / "crawl.log").open("wb") as log:
        crawl = subprocess.Popen(
            [sys.executable, "-c", CRAWL_IN_PROCESS, str(lake.home)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            (run_id,) = wait_until(lambda: slot_holders(instance), 120, "the crawl to take the slot")
        finally:
            crawl.kill()
            crawl.wait(timeout=60)
        writer.execute("ROLLBACK")
        writer.close()
        (step,) = [s.step_key for s in instance.event_log_storage.get_concurrency_info(CRAWLER_POOL).claimed_slots]

        alive = boston_lake("status", home=lake.home, DAGSTER_HOME=str(dagster_home))
        assert alive.returncode == 0, alive.stdout + alive.stderr
        lines = alive.stdout.splitlines()
        held = lines.index(f"pool slots held in the Dagster instance at {dagster_home}:")
        assert lines[held + 1].startswith(f"  boston_lake_crawler: held by run {run_id}, step {step} (STARTED since ")
        assert lines[held + 2] == (
            "      its step gives it back when it ends; if the run's worker died, run monitoring fails the run and the "
            "daemon frees the slot 60 s later (they look every 30 s, while `dagster dev` or `dagster-daemon run` runs "
            "on this instance)"
        )

        instance.report_run_failed(instance.get_run_by_id(run_id))  # what run monitoring does to a dead worker's run
        ended = boston_lake("status", home=lake.home, DAGSTER_HOME=str(dagster_home))
        assert ended.returncode == 0, ended.stdout + ended.stderr
        lines = ended.stdout.splitlines()[held + 1 :]
        assert re.fullmatch(
            rf"  boston_lake_crawler: held by run {run_id}, step {step} \(FAILURE, ended \d{{4}}-.* UTC\)", lines[0]
        )
        assert lines[1] == (
            "      the daemon frees it 60 s after the run ended (it looks every 30 s, while `dagster dev` or "
            "`dagster-daemon run` runs on this instance)"
        )
        assert lines[2].startswith("      to free it now: DAGSTER_HOME=")

        # An instance that frees no slot by itself: the pool stays jammed, so status fails until someone frees it.
        config = dagster_home / "dagster.yaml"
        config.write_text(re.sub(r"(?m)^\s+free_slots_after_run_end_seconds: \d+\n", "", config.read_text()))
        jammed = boston_lake("status", home=lake.home, DAGSTER_HOME=str(dagster_home))
        assert jammed.returncode == 1
        lines = jammed.stdout.splitlines()[held + 1 :]
        assert lines[1] == (
            "      nothing frees it by itself: this instance's dagster.yaml sets no "
            "run_monitoring.free_slots_after_run_end_seconds"
        )
        command = lines[2].removeprefix("      to free it now: ")
        freed = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)  # as pasted
        assert freed.returncode == 0, freed.stderr
        assert slot_holders(instance) == set()
        clear = boston_lake("status", home=lake.home, DAGSTER_HOME=str(dagster_home))
        assert clear.returncode == 0 and "pool slots held" not in clear.stdout


def demo(directory: Path, **options: object) -> subprocess.Popen[str]:
    """`boston-lake demo` as `make demo` runs it, from the repository (so it copies the shipped instance config),
    and as a shell starts a command in the foreground: Ctrl-C and TERM reach it."""
    return subprocess.Popen(
        [sys.executable, "-m", "boston_lake.cli", "demo", "--dir", str(directory)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
        preexec_fn=_interrupts_delivered,
        **options,  # type: ignore[call-overload]
    )


def _interrupts_delivered() -> None:
    """In the child, before it runs the demo: SIGINT and SIGTERM unblocked and not ignored. A child inherits both
    from the process that starts it, and a test worker that has run other tests (Spark's among them) may hold them
    otherwise than a terminal's shell does."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def signal_state(pid: int) -> str:
    """The process's blocked, ignored and caught signals, as the kernel shows them (to explain a lost Ctrl-C)."""
    status = Path(f"/proc/{pid}/status")
    lines = status.read_text().splitlines() if status.exists() else []
    return " ".join(" ".join(line.split()) for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def years_in(home: Path, table: str) -> set[int]:
    """The years the Iceberg table `table` of the lake at `home` holds now."""
    tables = LocalTarget(home).iceberg_reader()
    return set(tables.keys_by_year(table)) if tables is not None else set()


@pytest.mark.e2e
@pytest.mark.timeout(900)
@fault(
    "crash",
    "Ctrl-C in `make demo` while silver builds, before any gold",
    "running it again completes silver and builds every gold year the first run left missing, and exits 0",
    rows_lost="n/a",
)
def test_a_demo_interrupted_before_gold_builds_every_missing_year_when_run_again(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    first = demo(directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert first.stdout is not None
    printed = []
    for line in first.stdout:
        printed.append(line)
        if line.startswith("build_silver_service_requests "):
            # Ctrl-C as silver starts: a silver run takes seconds, so gold (which follows it) never starts.
            printed.append(f"[signals of the demo before Ctrl-C: {signal_state(first.pid)}]\n")
            first.send_signal(signal.SIGINT)
            break
    first.communicate(timeout=300)
    lake = directory / "lake"
    assert first.returncode != 0 and not years_in(lake, "service_levels"), "".join(printed)[-4000:]

    again = demo(directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 0, output[-4000:]
    silver = years_in(lake, "service_requests")
    assert silver and years_in(lake, "service_levels") == silver and years_in(lake, "intake") == silver
    assert "the lake's answers at a glance" in output  # the report, which reads gold, was written
