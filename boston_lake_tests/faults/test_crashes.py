"""Runs die (SIGKILL) at the worst moments, or two run the same year at once: the lake stays whole, and the
next run of the partition cleans up what the dead one left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.tables import NEW_SYSTEM_REQUESTS
from boston_lake.lake.zones.bronze import BronzeError
from boston_lake.lake.zones.raw import RawIngestError
from boston_lake.lake.zones.raw_datastore import LiveRawZone
from boston_lake_tests.faults.conftest import LEGACY_YEARS, LOG, REPO, Lake
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.faults.test_portal_faults import stall
from boston_lake_tests.support.portal import LEGACY_2022_ID, NEW_SYSTEM_ID

# A run of raw + bronze for 2022 in its own process; `moment` picks where it is killed (or held).
CHILD = """
import logging, os, signal, sys
from boston_lake.lake import stores
from boston_lake.lake.zones import bronze
from boston_lake.lake.zones.bronze import BronzeZone
from boston_lake.lake.source.portal import CkanPortal
from boston_lake.lake.zones.raw import RawZone
from boston_lake.lake.tables import LEGACY_REQUESTS

home, portal_url, moment = sys.argv[1:4]
store = stores.LocalObjectStore(home)


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if moment == "conversion":  # DuckDB has written the Parquet and its spill folder exists; rejects not yet
    copy = bronze._copy
    bronze._copy = lambda *args: (copy(*args), die())
elif moment == "publish":  # the data object is published, its bronze manifest is not
    publish = stores.LocalObjectStore.publish

    def publish_then_die(self, path, key):
        publish(self, path, key)
        if key.endswith(bronze.layout.BRONZE_FILE):
            die()

    stores.LocalObjectStore.publish = publish_then_die
elif moment == "hold":  # converted, then waits for its stdin to close before publishing
    convert = bronze.convert_csv

    def convert_then_wait(*args, **kwargs):
        done = convert(*args, **kwargs)
        print("converted", flush=True)
        sys.stdin.read()
        return done

    bronze.convert_csv = convert_then_wait
log = logging.getLogger("child")
RawZone(store, CkanPortal(portal_url), log).ingest(LEGACY_REQUESTS, [2022], range(2011, 2027))
BronzeZone(store, store, log).build(LEGACY_REQUESTS, 2022)
"""


def child(lake: Lake, moment: str, tmp: Path, **options: object) -> subprocess.Popen[str]:
    tmp.mkdir(exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(lake.home), lake.portal.url, moment],
        env=environment,
        text=True,
        **options,  # type: ignore[call-overload]
    )


def killed(process: subprocess.Popen[str]) -> None:
    assert process.wait(timeout=120) == -signal.SIGKILL, "the run was not killed where the test meant"


def assert_healed(lake: Lake, tmp: Path) -> None:
    """The next run of the partition succeeds, loses no row, and removes what the killed run left."""
    lake.ingest()
    assert lake.rows_lost(lake.served()) == 0
    assert lake.staging_debris() == []
    assert list(tmp.iterdir()) == []  # nothing of the killed run in the temp folder either


@fault(
    "crash",
    "SIGKILL during the download",
    "the year is not published; the next run downloads it whole and removes the partial file",
)
def test_killed_during_download(lake: Lake, tmp_path: Path) -> None:
    lake.portal.faults.append(stall(5))
    run = child(lake, "download", tmp_path / "tmp")
    deadline = time.monotonic() + 60
    while not any(name.endswith(".csv") for name in lake.staging_debris()) and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    killed(run)
    assert any(name.startswith("raw.legacy_requests.2022/") for name in lake.staging_debris())
    assert not (lake.home / "raw").exists() or not list((lake.home / "raw").rglob("*.csv"))
    assert_healed(lake, tmp_path / "tmp")


@fault(
    "crash",
    "SIGKILL during the conversion",
    "the previous year stays readable; the next run rebuilds it and removes the staged files and DuckDB's spill folder",
)
def test_killed_during_conversion(lake: Lake, tmp_path: Path) -> None:
    before = lake.ingest()
    lake.portal.replace_file(LEGACY_2022_ID, lake.served().replace(b"2022-01-2", b"2022-02-2"))
    killed(child(lake, "conversion", tmp_path / "tmp"))
    assert pq.ParquetFile(lake.bronze_key()).metadata.num_rows == before.rows
    assert any(name.startswith("bronze.legacy_requests.2022/") for name in lake.staging_debris())
    assert_healed(lake, tmp_path / "tmp")


@fault(
    "crash",
    "SIGKILL between publishing a year and recording it",
    "the next run sees the year unrecorded and rebuilds it, without force",
)
def test_killed_during_publish(lake: Lake, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    killed(child(lake, "publish", tmp_path / "tmp"))
    assert lake.bronze_key().exists()
    assert not (lake.home / layout.bronze_manifest_key("legacy_requests", 2022)).exists()
    rebuilt = lake.ingest()
    assert rebuilt.changed and rebuilt.reason.startswith("repaired: ")
    assert_healed(lake, tmp_path / "tmp")


@fault(
    "concurrency",
    "two runs of one year at once",
    "the second fails at once naming the run that holds the year; the first finishes",
)
def test_two_runs_of_one_year(lake: Lake, tmp_path: Path) -> None:
    first = child(lake, "hold", tmp_path / "tmp", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "converted"
        with pytest.raises(
            BronzeError, match=rf"bronze.legacy_requests.2022 is being written by another run \(pid {first.pid} "
        ):
            lake.ingest()
    finally:
        assert first.stdin is not None
        first.stdin.close()
        assert first.wait(timeout=120) == 0
    assert_healed(lake, tmp_path / "tmp")


@fault(
    "source",
    "the portal republishes a year between two runs",
    "the year is replaced; the old file moves to `_history/`, nothing deleted",
)
def test_source_changed_between_runs(lake: Lake) -> None:
    old = lake.served()
    lake.ingest()
    header, *rows = old.splitlines(keepends=True)
    new = header + b"".join(rows[:60])
    lake.portal.replace_file(LEGACY_2022_ID, new)
    changed = lake.ingest(accept_shrink="the city republished 2022 with 60 of its 100 rows")
    assert changed.changed and changed.rows == 60
    assert lake.rows_lost(new) == 0
    history = list((lake.home / "raw").rglob("_history/*/*.csv"))
    assert [path.read_bytes() for path in history] == [old]


# Another run in the middle of publishing one raw year of a split table: it holds the year's claim until told.
YEAR_HOLDER = """
import sys
from boston_lake.lake.stores import LocalObjectStore

with LocalObjectStore(sys.argv[1]).workspace(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


@fault(
    "concurrency",
    "a NEW SYSTEM year is being published by another run when a DataStore fetch changes it",
    "the fetch fails naming the year and the run that holds it; the year keeps its file; the next run publishes "
    "the new records and keeps the old ones in `_history/`",
)
def test_a_split_year_held_by_another_run_is_not_overwritten(lake: Lake) -> None:
    store, years = lake.store, [2025, 2026]
    ingest = LiveRawZone(store, lake.client(), LOG, source="datastore", full_read=True)  # an edit in place
    ingest.ingest(NEW_SYSTEM_REQUESTS, years, LEGACY_YEARS)
    year_file = (
        lake.home / layout.raw_partition_prefix(NEW_SYSTEM_REQUESTS.name, 2025) / "new_system_requests_2025.jsonl"
    )
    before = year_file.read_bytes()
    served = lake.portal.file_for(NEW_SYSTEM_ID)
    assert served is not None
    header, *rows = served.read_bytes().splitlines(keepends=True)
    changed = next(index for index, row in enumerate(rows) if b",2025-" in row[:40])
    rows[changed] = rows[changed].replace(b",ONTIME,", b",OVERDUE,", 1)
    lake.portal.replace_file(NEW_SYSTEM_ID, header + b"".join(rows))

    name = f"raw.{NEW_SYSTEM_REQUESTS.name}.2025"
    holder = subprocess.Popen(
        [sys.executable, "-c", YEAR_HOLDER, str(lake.home), name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RawIngestError, match=rf"{name} is being written by another run \(pid {holder.pid} "):
            ingest.ingest(NEW_SYSTEM_REQUESTS, years, LEGACY_YEARS)
        assert year_file.read_bytes() == before
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0

    published = {partition.year: partition for partition in ingest.ingest(NEW_SYSTEM_REQUESTS, years, LEGACY_YEARS)}
    assert published[2025].changed and not published[2026].changed
    assert year_file.read_bytes() != before
    history = list(year_file.parent.glob("_history/*/new_system_requests_2025.jsonl"))
    assert [path.read_bytes() for path in history] == [before]
