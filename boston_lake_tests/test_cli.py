"""The `boston-lake` command as a person runs it: in a subprocess, offline."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from boston_lake.lake.catalog.local import LocalCatalog
from boston_lake.lake.tables import DATABASE
from boston_lake_tests.support.killed_run import workspace_holder

REPO = Path(__file__).resolve().parents[1]


def boston_lake(
    *args: str, env: dict[str, str] | None = None, cwd=None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "boston_lake.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


@pytest.mark.e2e
@pytest.mark.timeout(900)  # every layer from raw to the report, in Dagster runs, on a shared machine
def test_demo_materializes_every_offered_year_through_dagster_and_prints_counts(tmp_path):
    result = boston_lake("demo", "--dir", str(tmp_path / "demo"), timeout=840)
    assert result.returncode == 0, result.stdout + result.stderr
    table_lines = [
        line for line in result.stdout.splitlines() if line.startswith("| legacy") or line.startswith("| new_system")
    ]
    counts = {tuple(cell.strip() for cell in line.split("|")[1:3]): line.split("|")[6].strip() for line in table_lines}
    assert counts == {
        ("legacy_requests", "2013"): "700",
        ("legacy_requests", "2022"): "100",
        ("legacy_requests", "2023"): "700",
        ("new_system_requests", "2025"): "4134",
        ("new_system_requests", "2026"): "1339",
    }
    runs = list((tmp_path / "demo" / "dagster_home").rglob("runs.db")) + list(
        (tmp_path / "demo" / "dagster_home").rglob("*.db")
    )
    assert runs, "the demo's runs are kept in its Dagster home for the UI"
    report = (tmp_path / "demo" / "report.html").resolve()
    assert f"one file that opens with no network: {report}" in result.stdout, "the demo names its report"
    assert "Median hours to close, by neighborhood" in report.read_text(encoding="utf-8")

    assert "crawl_legacy_requests" in result.stdout and "crawl_new_system_requests" in result.stdout
    home = {"BOSTON_LAKE_HOME": str(tmp_path / "demo" / "lake")}
    # The demo says how to reach its lake, and says nothing twice, and warns about nothing.
    lake = str(tmp_path / "demo" / "lake")
    assert f"boston-lake --home {lake} status" in result.stdout
    # Pasted into a shell at the project root whose PATH has no venv, the printed command works as typed.
    (printed,) = [
        line.split("(or catalog")[0].strip()
        for line in result.stdout.splitlines()
        if " --home " in line and " status " in line
    ]
    pasted = subprocess.run(
        ["bash", "-c", printed], cwd=REPO, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120
    )
    assert pasted.returncode == 0 and "legacy_requests" in pasted.stdout, (printed, pasted.stderr)
    assert "warning" not in (result.stdout + result.stderr).lower()
    output = (result.stdout + result.stderr).splitlines()
    summaries = [line for line in output if "legacy_requests: created (version 1)" in line]
    assert len(summaries) == 1, summaries
    new_system = tmp_path / "demo" / "lake" / "raw" / "boston311" / "new_system_requests"
    assert (new_system / "_source" / "datastore" / "_manifest.json").is_file()  # read from the DataStore
    assert (new_system / "year=2025" / "new_system_requests_2025.jsonl").is_file()

    status = boston_lake("--home", lake, "status")
    assert status.returncode == 0, status.stderr
    assert "| legacy_requests     |   2022 |        100 |" in status.stdout

    sql = "SELECT year, count(*) AS n FROM boston311.new_system_requests GROUP BY year ORDER BY year"
    query = boston_lake("query", sql, "--format", "csv", env=home)
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines() == ['"year","n"', '"2025",4134', '"2026",1339']  # = bronze rows per year
    as_json = boston_lake("query", "SELECT count(*) AS n FROM boston311.legacy_requests", "--format", "json", env=home)
    assert '"n": 1500' in as_json.stdout

    catalog = boston_lake("catalog", "--table", "legacy_requests", env=home)
    assert catalog.returncode == 0, catalog.stderr
    assert "table legacy_requests  version 1  1500 rows" in catalog.stdout
    assert "sla_target_dt timestamp" in catalog.stdout and "target_dt timestamp" in catalog.stdout
    assert "partition keys: year string" in catalog.stdout and "versions: 1 (34 columns)" in catalog.stdout
    unknown = boston_lake("--home", lake, "catalog", "--table", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        "no table 'nope' in the catalog; it has intake, legacy_requests, new_system_requests, service_levels, "
        "service_requests"
    )

    # The demo's last query is silver: every generation in one table; the CLI reads it through the catalog too.
    assert any(line.startswith("|   2026 | new_system") for line in result.stdout.splitlines())
    across = boston_lake(
        "query",
        "SELECT source_generation, count(*) AS n, min(opened_at) AS first FROM boston311.service_requests "
        "GROUP BY source_generation ORDER BY source_generation",
        "--format",
        "csv",
        env=home,
    )
    assert across.returncode == 0, across.stderr
    assert across.stdout.splitlines() == [
        '"source_generation","n","first"',
        '"new_system",5473,2025-08-01 10:35:06.539000Z',
        '"v1",100,2022-01-01 05:16:00.000000Z',
        '"v2",1400,2013-01-01 16:32:33.000000Z',
    ]

    bad = boston_lake("query", "SELECT * FROM boston311.nope", env=home)
    assert bad.returncode == 1 and (
        "known tables: boston311.intake, boston311.legacy_requests, boston311.new_system_requests, "
        "boston311.service_levels, boston311.service_requests" in bad.stderr
    )


@pytest.mark.parametrize("command", ["query", "catalog", "status", "report", "provision"])
def test_every_command_names_the_environment_it_reads(command):
    result = boston_lake(command, "--help")
    assert result.returncode == 0 and "BOSTON_LAKE_TARGET" in result.stdout


def test_status_of_an_empty_lake(tmp_path):
    result = boston_lake("status", env={"BOSTON_LAKE_HOME": str(tmp_path)})
    assert result.returncode == 0 and "the lake is empty" in result.stdout


def test_status_reports_what_a_killed_run_left_and_that_it_heals_itself(tmp_path):
    with workspace_holder(tmp_path, "bronze.legacy_requests.2022") as holder:
        holder.kill()
        holder.wait(timeout=60)
    result = boston_lake("status", env={"BOSTON_LAKE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-2:] == [
        "left behind by killed runs (readers never see it; it heals by itself):",
        f"  {tmp_path / '.staging' / 'bronze.legacy_requests.2022'}: left by a killed run (pid {holder.pid} since "
        + lines[-1].split(f"(pid {holder.pid} since ", 1)[-1],
    ]
    assert lines[-1].endswith("), 1 staged files; the next run of bronze.legacy_requests.2022 removes them")


def test_a_query_error_is_said_once(tmp_path):
    LocalCatalog(tmp_path / "catalog" / "catalog.sqlite").create_database(DATABASE)
    result = boston_lake("query", "SELEC 1", env={"BOSTON_LAKE_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.startswith("query failed: Parser Error") and result.stderr.count("query failed") == 1


def test_configuration_errors_are_one_clear_line(tmp_path):
    result = boston_lake("status", env={"BOSTON_LAKE_TARGET": "nope"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("configuration error: BOSTON_LAKE_TARGET='nope'")


@pytest.mark.parametrize("command", [["status"], ["catalog"], ["query", "SELECT 1 AS one"]])
def test_reading_commands_never_import_dagster(tmp_path, command):
    """The core builds the target without Dagster: status, catalog and query cost no Dagster start-up (status
    reads a Dagster instance's pool slots only when DAGSTER_HOME names one)."""
    LocalCatalog(tmp_path / "catalog" / "catalog.sqlite").create_database(DATABASE)  # a lake that has a catalog
    run_and_list_modules = (
        "import sys; from boston_lake.cli import main; code = main(sys.argv[1:]); "
        "print('dagster modules:', sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster'))); "
        "raise SystemExit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", run_and_list_modules, *command],
        env={**{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}, "BOSTON_LAKE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "dagster modules: []"
