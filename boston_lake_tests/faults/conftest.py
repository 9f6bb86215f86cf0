"""A small lake fed by the test portal over real HTTP, and the ledger every fault test ends with: rows lost."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.source.csvscan import profile_file
from boston_lake.lake.source.portal import CkanPortal
from boston_lake.lake.stores import LocalObjectStore
from boston_lake.lake.tables import LEGACY_REQUESTS
from boston_lake.lake.zones.bronze import BronzePartition, BronzeZone, stored_rejects
from boston_lake.lake.zones.publish import ShrinkGuard
from boston_lake.lake.zones.raw import RawZone
from boston_lake_tests.support.portal import LEGACY_2022_ID, TestPortal

REPO = Path(__file__).resolve().parents[2]
LEGACY_YEARS = range(2011, 2027)
LOG = logging.getLogger("faults")


@dataclass
class Lake:
    """Raw and bronze of one BOSTON_LAKE_HOME, ingesting legacy years from the test portal."""

    home: Path
    portal: TestPortal

    @property
    def store(self) -> LocalObjectStore:
        return LocalObjectStore(self.home)

    def client(self, **options: float) -> CkanPortal:
        settings = {"backoff_seconds": 0.01, "max_attempts": 3, **options}
        return CkanPortal(self.portal.url, log=LOG, **settings)  # type: ignore[arg-type]

    def ingest(self, year: int = 2022, accept_shrink: str = "", **portal_options: float) -> BronzePartition:
        RawZone(self.store, self.client(**portal_options), LOG).ingest(LEGACY_REQUESTS, [year], LEGACY_YEARS)
        shrink = ShrinkGuard(accept=accept_shrink)
        return BronzeZone(self.store, self.store, LOG).build(LEGACY_REQUESTS, year, shrink=shrink)

    def bronze_key(self, year: int = 2022) -> Path:
        return self.home / layout.bronze_data_key(LEGACY_REQUESTS.name, year)

    def rows_lost(self, source: bytes, year: int = 2022) -> int:
        """Data rows of `source` (the file the portal serves) that are neither in bronze nor in its rejects."""
        (self.home / "source.csv").write_bytes(source)
        source_rows = profile_file(self.home / "source.csv").data_rows
        (self.home / "source.csv").unlink()
        kept = pq.ParquetFile(self.bronze_key(year)).metadata.num_rows
        return source_rows - kept - stored_rejects(self.store, LEGACY_REQUESTS.name, year)

    def staging_debris(self) -> list[str]:
        """Files left in the zone's staging area (lock files are the partitions' locks, not debris)."""
        staging = self.home / ".staging"
        if not staging.is_dir():
            return []
        return sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file() and p.suffix != ".lock")

    def served(self) -> bytes:
        path = self.portal.file_for(LEGACY_2022_ID)
        assert path is not None
        return path.read_bytes()


@pytest.fixture
def lake(tmp_path: Path, portal: TestPortal) -> Lake:
    return Lake(tmp_path / "home", portal)


def boston_lake(*args: str, home: Path, user: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The `boston-lake` command as a person runs it; `user="nobody"` runs it without root's powers."""
    command = [sys.executable, "-m", "boston_lake.cli", *args]
    if user and os.geteuid() == 0:
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    environment = {**os.environ, "PYTHONPATH": str(REPO), "BOSTON_LAKE_HOME": str(home), **env}
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, cwd=home.parent)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """A user-facing failure: a non-zero exit and exactly one line on stderr, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
