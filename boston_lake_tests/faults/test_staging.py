"""Staging is swept by claims, not by clocks: a live writer's file stays whatever its age looks like."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from boston_lake.lake.stores import LocalObjectStore
from boston_lake_tests.faults.conftest import REPO
from boston_lake_tests.faults.scenario import fault

WRITER = """
import sys
from boston_lake.lake.stores import LocalObjectStore

with LocalObjectStore(sys.argv[1]).scratch_file(".parquet") as staged:
    staged.write_bytes(b"half a year")
    print(staged, flush=True)
    sys.stdin.readline()  # writing, until told to stop or killed
"""
TWO_DAYS = 2 * 24 * 3600


@fault(
    "crash",
    "a run's live staging file looks two days old (a clock running ahead), and another run writes",
    "kept: the sweep removes only staging files no live writer claims; once the writer is killed, the next "
    "write removes what it left",
    "n/a",
)
def test_a_live_staging_file_is_kept_whatever_its_age_and_a_dead_ones_is_swept(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert writer.stdout is not None
        staged = Path(writer.stdout.readline().strip())
        long_ago = time.time() - TWO_DAYS
        os.utime(staged, (long_ago, long_ago))
        store = LocalObjectStore(root)
        store.put_bytes("other/object.bin", b"another run's write, which sweeps staging first")
        assert staged.read_bytes() == b"half a year"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    store.put_bytes("other/object.bin", b"the next write")
    assert not staged.exists()
    assert sorted(path.name for path in (root / ".staging").iterdir()) == []
