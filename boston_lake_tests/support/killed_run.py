"""A run that holds a partition's workspace in its own process, for tests to kill (SIGKILL) mid-write."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOLD = """
import sys, time
from pathlib import Path
from boston_lake.lake.stores import LocalObjectStore

with LocalObjectStore(Path(sys.argv[1])).workspace(sys.argv[2]) as work:
    (work.folder / "staged.parquet").write_bytes(b"half written")
    print("holding", flush=True)
    time.sleep(600)
"""


@contextmanager
def workspace_holder(zone_root: Path, name: str) -> Iterator[subprocess.Popen[str]]:
    """A live process holding the workspace `name` of the local zone at `zone_root`, with one staged file."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(zone_root), name], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "holding"
        yield process
    finally:
        process.kill()
        process.wait(timeout=60)
