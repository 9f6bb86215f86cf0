"""The `boston-lake` command as a person runs it: in a subprocess, offline."""

import itertools
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from boston_lake.defs.keys import RANGE_END, RANGE_START
from boston_lake.demo import DEMO_QUERIES
from boston_lake.lake import layout
from boston_lake.lake.catalog.crawler import Crawler
from boston_lake.lake.catalog.local import LocalCatalog
from boston_lake.lake.clock import utc_now
from boston_lake.lake.stores import LocalObjectStore
from boston_lake.lake.tables import COLUMN_DESCRIPTIONS, DATABASE, TABLES
from boston_lake.lake.targets import LocalTarget
from boston_lake.lake.zones.gold import SERVICE_LEVELS
from boston_lake.lake.zones.silver.duckdb_build import SilverZone
from boston_lake_tests.support.bronze_samples import BronzeSample, BronzeSamples, bronze_publish
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
    # A project root as a fresh clone has it after `make demo`: the venv and the demo folder.
    root = tmp_path / "root"
    root.mkdir()
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (root / ".dagster_home").symlink_to(REPO / ".dagster_home")  # the instance settings the demo copies
    demo = root / ".demo"
    result = boston_lake("demo", "--dir", ".demo", cwd=root, timeout=840)
    assert result.returncode == 0, result.stdout + result.stderr
    table_lines = [
        line for line in result.stdout.splitlines() if line.startswith("| legacy") or line.startswith("| new_system")
    ]
    counts = {tuple(cell.strip() for cell in line.split("|")[1:3]): line.split("|")[6].strip() for line in table_lines}
    real_counts = {2013: "700", 2022: "100", 2023: "700"}  # the other legacy years are 140 re-dated rows each
    assert counts == {
        **{("legacy_requests", str(year)): real_counts.get(year, "140") for year in range(2011, 2027)},
        ("new_system_requests", "2025"): "4134",
        ("new_system_requests", "2026"): "1339",
    }
    runs = list((demo / "dagster_home").rglob("runs.db")) + list((demo / "dagster_home").rglob("*.db"))
    assert runs, "the demo's runs are kept in its Dagster home for the UI"
    with DagsterInstance.from_config(str(demo / "dagster_home")) as instance:
        launched_by = {run.job_name: run.tags.get("dagster/sensor_name") for run in instance.get_runs()}
        ingests = [(run.job_name, run.tags.get(RANGE_START), run.tags.get(RANGE_END)) for run in instance.get_runs()]
    # One range run per table, as a UI backfill of every year with its single-run policy launches it.
    assert sorted(run for run in ingests if run[0].startswith("ingest_")) == [
        ("ingest_legacy_requests", "2011", "2026"),
        ("ingest_new_system_requests", "2025", "2026"),
    ]
    assert launched_by == {  # what a sensor requested says so in the UI; ingest is the demo's own
        "ingest_legacy_requests": None,
        "ingest_new_system_requests": None,
        "crawl_legacy_requests": "crawl_landed_bronze",
        "crawl_new_system_requests": "crawl_landed_bronze",
        "build_silver_service_requests": "rebuild_silver_on_bronze_change",
        "build_gold": "gold_follows_silver",
    }
    report = (demo / "report.html").resolve()
    assert f"one file that opens with no network: {report}" in result.stdout, "the demo names its report"
    assert "Median hours to close, by neighborhood" in report.read_text(encoding="utf-8")

    assert "crawl_legacy_requests" in result.stdout and "crawl_new_system_requests" in result.stdout
    home = {"BOSTON_LAKE_HOME": str(demo / "lake")}
    lake = str(demo / "lake")
    # Every command the demo prints and README shows, pasted into a shell at the project root whose PATH has no
    # venv, works as typed.
    printed = [line.split("(or catalog")[0].strip() for line in result.stdout.splitlines() if " --home " in line]
    assert printed[-1] == f"{Path(sys.executable).parent / 'boston-lake'} --home .demo/lake status"  # not on PATH
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = [line for line in readme.splitlines() if line.startswith(".venv/bin/boston-lake ")]
    assert len(printed) == len(DEMO_QUERIES) + 1 and len(shown) == 6
    for command in printed + shown:
        pasted = subprocess.run(
            ["bash", "-c", command],
            cwd=root,
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert pasted.returncode == 0 and pasted.stdout and not pasted.stderr, (command, pasted.stderr)
    assert (root / "report.html").is_file()
    # The shell blocks of the operations guide too (accepting a shrink on the demo lake, then reading it).
    operations = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    for block in re.findall(r"```bash\n(.*?)```", operations, re.S):
        pasted = subprocess.run(
            ["bash", "-e", "-c", block],
            cwd=root,
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        # `dagster asset materialize` logs its run on stderr; the boston-lake commands print their answers.
        assert pasted.returncode == 0 and (pasted.stdout or "RUN_SUCCESS" in pasted.stderr), (
            block,
            pasted.stderr[-4000:],
        )
    # The demo says nothing twice, and warns about nothing.
    assert "warning" not in (result.stdout + result.stderr).lower()
    output = (result.stdout + result.stderr).splitlines()
    summaries = [line for line in output if "legacy_requests: created (version 1)" in line]
    assert len(summaries) == 1, summaries
    new_system = demo / "lake" / "raw" / "boston311" / "new_system_requests"
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
    assert '"n": 3320' in as_json.stdout  # 700 + 100 + 700 real rows and 13 re-dated years of 140

    catalog = boston_lake("catalog", "--table", "legacy_requests", env=home)
    assert catalog.returncode == 0, catalog.stderr
    assert "table legacy_requests  version 1  3320 rows" in catalog.stdout
    listed = catalog.stdout.split("columns (partition keys last):\n")[1].splitlines()
    columns = list(itertools.takewhile(lambda line: not line.lstrip().startswith("partition "), listed))
    assert columns[0].split(maxsplit=2) == ["case_enquiry_id", "bigint", COLUMN_DESCRIPTIONS["case_enquiry_id"]]
    assert columns[-1].split(maxsplit=2) == ["year", "string", COLUMN_DESCRIPTIONS["year"]]
    assert "versions: 1 (34 columns)" in catalog.stdout
    gold = boston_lake("catalog", "--table", "service_levels", env=home)
    (on_time,) = [line.split(maxsplit=2) for line in gold.stdout.splitlines() if line.split()[:1] == ["on_time"]]
    assert on_time == ["on_time", "long", dict(SERVICE_LEVELS.columns)["on_time"]]  # gold's own description
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
        '"v2",3220,2011-01-01 16:32:33.000000Z',  # 1400 real rows and 13 re-dated years of 140
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


@pytest.fixture
def crawled_home(tmp_path: Path, bronze_samples: BronzeSamples) -> Path:
    """A lake home whose bronze samples are crawled into its catalog."""
    store = LocalObjectStore(tmp_path)
    for sample in bronze_samples.legacy + bronze_samples.new_system:
        bronze_publish(store, sample)
    targets = [(table.name, layout.bronze_table_prefix(table.name)) for table in TABLES]
    Crawler(store, LocalCatalog(tmp_path / "catalog" / "catalog.sqlite"), DATABASE).crawl(targets)
    return tmp_path


@pytest.mark.slow  # five CLI processes over a crawled lake
def test_query_lists_and_describes_tables_and_prints_numbers_as_numbers(crawled_home: Path):
    home = ["--home", str(crawled_home)]
    tables = boston_lake(*home, "query", "SHOW TABLES", "--format", "csv")
    assert tables.stdout.splitlines() == ['"name"', '"legacy_requests"', '"new_system_requests"'], tables.stderr
    described = boston_lake(*home, "query", "DESCRIBE boston311.legacy_requests")
    assert described.returncode == 0 and "| case_enquiry_id " in described.stdout and "| year " in described.stdout
    sums = boston_lake(
        *home, "query", "SELECT sum(1) AS c, avg(latitude) > 0 AS north FROM legacy_requests", "--format", "json"
    )
    assert json.loads(sums.stdout) == [{"c": 1500, "north": True}], sums.stderr


@pytest.mark.parametrize(
    "output,printed", [("table", "0 rows (columns: year)\n"), ("csv", '"year"\n'), ("json", "[]\n")]
)
def test_an_empty_result_says_0_rows(crawled_home: Path, output: str, printed: str):
    sql = "SELECT year FROM boston311.legacy_requests WHERE year = '1999'"
    empty = boston_lake("--home", str(crawled_home), "query", sql, "--format", output)
    assert empty.returncode == 0 and empty.stdout == printed
    assert empty.stderr == ("" if output == "table" else "0 rows\n")  # CSV and JSON stay parseable


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


def _json(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow  # ten CLI processes
def test_history_time_travel_and_rollback_of_a_republished_year(tmp_path, bronze_samples):
    """Silver 2022 published, then republished with different data: `query --as-of` a time between the two and
    `--snapshot` the first return the earlier rows, the current query the new ones; `rollback` restores the earlier
    rows as a new snapshot that `history` lists with who and why."""
    lake = LocalObjectStore(tmp_path / "lake")
    env = {"BOSTON_LAKE_HOME": str(lake.root)}
    bronze_publish(lake, bronze_samples.legacy_v1_2022)
    zone = SilverZone(LocalTarget(lake.root).iceberg(), logging.getLogger(__name__), run_id="run-first")
    first = zone.build(2022)
    between = utc_now()
    republished = pq.read_table(bronze_samples.legacy_v1_2022.path)
    titles = pa.array(["republished"] * republished.num_rows)
    republished = republished.set_column(republished.schema.get_field_index("case_title"), "case_title", titles)
    pq.write_table(republished, tmp_path / "republished.parquet")
    bronze_publish(lake, BronzeSample("legacy_requests", 2022, tmp_path / "republished.parquet", 100, "v1"))
    zone.run_id = "run-second"
    second = zone.build(2022)
    assert second.snapshot_id != first.snapshot_id

    sql = (
        "SELECT count(*) FILTER (WHERE case_title = 'republished') AS republished, count(*) AS cases "
        "FROM boston311.service_requests WHERE year = 2022"
    )
    now = _json(boston_lake("query", sql, "--format", "json", env=env))
    then = _json(boston_lake("query", sql, "--format", "json", "--as-of", between.isoformat(), env=env))
    at_first = _json(boston_lake("query", sql, "--format", "json", "--snapshot", str(first.snapshot_id), env=env))
    assert now == [{"republished": 100, "cases": 100}]
    assert then == at_first == [{"republished": 0, "cases": 100}]
    before_any = _json(boston_lake("query", sql, "--format", "json", "--as-of", "2020-01-01T00:00:00Z", env=env))
    assert before_any == [{"republished": 0, "cases": 0}]

    history = _json(boston_lake("history", "service_requests", "--format", "json", env=env))
    assert [(entry["snapshot"], entry["year"], entry["rows"], entry["dagster run"]) for entry in history] == [
        (first.snapshot_id, "2022", "100", "run-first"),
        (second.snapshot_id, "2022", "100", "run-second"),
    ]
    undo = boston_lake(
        "rollback", "service_requests", "--to", str(first.snapshot_id), "--reason", "titles overwritten", env=env
    )
    assert undo.returncode == 0, undo.stderr
    assert f"restores snapshot {first.snapshot_id}" in undo.stdout
    assert _json(boston_lake("query", sql, "--format", "json", env=env)) == [{"republished": 0, "cases": 100}]
    last = _json(boston_lake("history", "service_requests", "--format", "json", env=env))[-1]
    assert last["operation"] == "rollback" and last["note"].startswith(f"rollback to {first.snapshot_id} by ")
    assert last["note"].endswith(": titles overwritten")

    unknown = boston_lake("rollback", "service_requests", "--to", "42", "--reason", "x", env=env)
    assert unknown.returncode == 1 and "boston311.service_requests has no snapshot 42" in unknown.stderr
    no_table = boston_lake("history", "nope", env=env)
    assert no_table.returncode == 1 and "no Iceberg table boston311.nope" in no_table.stderr
