"""A real PostgreSQL server for the tests, from the OS's own binaries (Debian's `postgresql` package).

The cluster lives in a fresh temporary folder and listens only on a unix socket there, so parallel test
runs never share a port. As root (CI machines, containers) the server runs as the `postgres` user, since
PostgreSQL refuses to run as root. `.ci/run` installs the package on a fresh machine.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_USER = "postgres"
PORT = 5432  # only names the socket file: the server listens on no TCP address
DATABASE = "dagster"


def postgres_bin_dir() -> Path:
    """Where initdb and pg_ctl are: on PATH, or in Debian's versioned folder (not on PATH by default)."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    versioned = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[-3]))
    if versioned:
        return Path(versioned[-1]).parent
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install them with "
        "`apt-get install -y postgresql` (.ci/run does this on a fresh machine)"
    )


@dataclass
class PostgresServer:
    """One cluster; `stop()` and `start()` restart it on the same data, as an operator's restart would."""

    root: Path
    bin_dir: Path
    running: bool = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def url(self, database: str = DATABASE) -> str:
        """The SQLAlchemy URL, with the psycopg2 driver named (see deploy/dagster.yaml)."""
        return f"postgresql+psycopg2://{SERVER_USER}@/{database}?host={self.socket_dir}&port={PORT}"

    def _run(self, program: str, *args: str) -> str:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, SERVER_USER)
            shutil.chown(self.socket_dir, SERVER_USER)
        self._run("initdb", "-D", str(self.data_dir), "-U", SERVER_USER, "--auth=trust", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-c listen_addresses='' -k {self.socket_dir} -p {PORT} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "start", "-w", "-D", str(self.data_dir), "-l", str(self.root / "server.log"), "-o", options)
        self.running = True

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir))
        self.running = False

    def psql(self, sql: str, database: str = DATABASE) -> list[tuple[str, ...]]:
        """Rows of a query, as text, through the server's own client (no Python driver involved)."""
        output = self._run(
            "psql", "-h", str(self.socket_dir), "-p", str(PORT), "-U", SERVER_USER, "-d", database,
            "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql,
        )  # fmt: skip
        return [tuple(line.split("\t")) for line in output.splitlines() if line]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A running server with an empty `dagster` database; stopped and deleted afterwards."""
    # Not pytest's tmp_path: its parents are private to the test user, and the server may run as another.
    root = Path(tempfile.mkdtemp(prefix="boston_lake_pg_"))
    server = PostgresServer(root, postgres_bin_dir())
    try:
        server.init()
        server.start()
        server.psql(f"CREATE DATABASE {DATABASE}", database="postgres")
        yield server
    finally:
        if server.running:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
