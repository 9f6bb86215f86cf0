"""`open_lake`: the README's example pasted into a Python shell, and the lake it opens, on both targets.

The example runs against a real lake on the local target (built as support/client_lake.py builds it). On the aws
target the engine is Athena, as for `boston-lake query`; moto's Athena answers the results a test queues rather
than reading S3, so that test shows the lake's SQL reaching Athena and its answer coming back, not Athena's reading.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from boston_lake import open_lake
from boston_lake.lake.notebook import LakeOptionError
from boston_lake.lake.query.engine import QueryError
from boston_lake.lake.targets import LocalTarget
from boston_lake_tests.support.client_lake import YEARS, build_lake
from boston_lake_tests.support.moto_server import MotoServer
from boston_lake_tests.support.portal import TestPortal

REPO = Path(__file__).resolve().parents[2]
BY_YEAR = "SELECT year, count(*) AS cases FROM boston311.legacy_requests GROUP BY year ORDER BY year"


def readme_example() -> str:
    (example,) = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)
    return example


@pytest.fixture
def demo_root(portal: TestPortal, tmp_path: Path) -> Path:
    """A folder laid out as the project root is after `make demo`: the lake in `.demo/lake`."""
    build_lake(LocalTarget(tmp_path / ".demo" / "lake"), portal)
    return tmp_path


def test_the_readme_example_pasted_into_a_python_shell_shows_the_rows_per_year(demo_root: Path) -> None:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("BOSTON_LAKE_")}
    shell = subprocess.run(
        [sys.executable, "-q", "-i"],
        input=readme_example(),
        cwd=demo_root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0 and "Traceback" not in shell.stderr, shell.stderr
    expected = LocalTarget(demo_root / ".demo" / "lake").query(BY_YEAR).to_pylist()
    assert [row["year"] for row in expected] == [str(year) for year in YEARS]
    shown = [line.split() for line in shell.stdout.splitlines()]
    for row in expected:
        assert [str(row["year"]), str(row["cases"])] in [line[1:] for line in shown], shell.stdout


def test_a_lake_answers_as_boston_lake_query_does_and_writes_nothing(demo_root: Path) -> None:
    home = demo_root / ".demo" / "lake"
    with open_lake(home) as lake:
        assert lake.sql(BY_YEAR).to_arrow_table() == LocalTarget(home).query(BY_YEAR)
        assert lake.sql(BY_YEAR).filter("cases > 0").aggregate("count(*)").fetchall() == [(len(YEARS),)]
        with pytest.raises(QueryError, match="read-only"):
            lake.sql("CREATE TABLE boston311.notes AS SELECT 1 AS n")
    assert open_lake(environ={"BOSTON_LAKE_HOME": str(home)}).sql("SELECT count(*) FROM legacy_requests").fetchall()


def test_an_option_the_engine_does_not_take_is_named(demo_root: Path) -> None:
    with pytest.raises(LakeOptionError, match="as_of_time"):
        open_lake(demo_root / ".demo" / "lake", as_of_time="2026-01-01")


def test_on_aws_the_lake_asks_athena(aws_environment: dict[str, str], aws_env: MotoServer) -> None:
    column = {"Name": "cases", "Label": "cases", "Type": "bigint", "Precision": 19, "Scale": 0, "Nullable": "UNKNOWN"}
    aws_env.queue_athena_results({"column_info": [column], "rows": [row("cases"), row("42")]})
    with open_lake(environ=aws_environment) as lake:
        assert "Athena" in repr(lake)
        assert lake.sql("SELECT count(*) AS cases FROM boston311.legacy_requests").to_arrow_table() == pa.table(
            {"cases": pa.array([42], pa.int64())}
        )


def row(*values: str) -> dict[str, list[dict[str, str]]]:
    return {"Data": [{"VarCharValue": value} for value in values]}
