"""Silver-shaped Parquet made from the bundled portal samples, so gold can be tested on real rows alone.

It maps each sample's columns onto silver's names with the simplest rules (timestamps read as UTC, ONTIME ->
true); the gold tests judge the gold SQL against counts computed here in Python, not silver's conform rules.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from boston_lake.lake.targets import LocalTarget
from boston_lake.lake.zones.gold import GOLD_TABLES, build_gold_partition
from boston_lake.lake.zones.silver.model import SILVER_TABLE, SILVER_ZONE
from boston_lake.sample_portal.server import DATA_DIR

_LEGACY = """
    SELECT CAST(case_enquiry_id AS VARCHAR) AS case_id, 'legacy' AS source_system, '{generation}' AS source_generation,
           CAST(open_dt AS TIMESTAMP) AT TIME ZONE 'UTC' AS opened_at,
           CAST(nullif(trim(closed_dt), '') AS TIMESTAMP) AT TIME ZONE 'UTC' AS closed_at,
           CAST(nullif(trim({target}), '') AS TIMESTAMP) AT TIME ZONE 'UTC' AS sla_due_at,
           case_status, CASE {on_time} WHEN 'ONTIME' THEN true WHEN 'OVERDUE' THEN false END AS on_time,
           type AS case_type, department, nullif(trim(neighborhood), '') AS neighborhood,
           CAST(latitude AS DOUBLE) AS latitude, CAST(longitude AS DOUBLE) AS longitude, source AS channel
    FROM read_csv('{path}', all_varchar = true)
"""
_NEW_SYSTEM = """
    SELECT case_id, 'new_system' AS source_system, 'new_system' AS source_generation,
           CAST(replace(open_date, '+00', '') AS TIMESTAMP) AT TIME ZONE 'UTC' AS opened_at,
           CAST(replace(nullif(trim(close_date), ''), '+00', '') AS TIMESTAMP) AT TIME ZONE 'UTC' AS closed_at,
           CAST(replace(nullif(trim(target_close_date), ''), '+00', '') AS TIMESTAMP) AT TIME ZONE 'UTC' AS sla_due_at,
           case_status, CASE on_time WHEN 'ONTIME' THEN true WHEN 'OVERDUE' THEN false END AS on_time,
           service_name AS case_type, assigned_department AS department, nullif(trim(neighborhood), '') AS neighborhood,
           CAST(latitude AS DOUBLE) AS latitude, CAST(longitude AS DOUBLE) AS longitude, report_source AS channel
    FROM read_csv('{path}', all_varchar = true)
"""


def silver_sample_rows() -> pa.Table:
    """Every sample case with silver's columns; `year` is the year of its open time in Boston."""
    parts = [
        _LEGACY.format(path=DATA_DIR / name, generation=generation, target=target, on_time=on_time)
        for name, generation, target, on_time in (
            ("legacy_v1_2022-01_qsv_boston311-100.csv", "v1", "target_dt", "ontime"),
            ("legacy_v2_2013_bu-spark_filtered_every4th.csv", "v2", "sla_target_dt", "on_time"),
            ("legacy_v2_2023_bu-spark_animal_reports_every5th.csv", "v2", "sla_target_dt", "on_time"),
        )
    ]
    parts += [_NEW_SYSTEM.format(path=path) for path in sorted(DATA_DIR.glob("new_system_*.csv"))]
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    rows = connection.sql(
        "SELECT *, CAST(year(opened_at AT TIME ZONE 'America/New_York') AS INTEGER) AS year FROM ("
        + " UNION ALL BY NAME ".join(parts)
        + ")"
    ).to_arrow_table()
    connection.close()
    return rows


def write_silver_samples(root: Path) -> dict[int, str]:
    """Each year committed to the Iceberg table boston311.service_requests of the lake at `root`: year -> key."""
    rows = silver_sample_rows()
    return {
        year: write_silver_year(root, year, rows.filter(pc.equal(rows.column("year"), year)))
        for year in sorted(set(rows.column("year").to_pylist()))
    }


def write_silver_year(root: Path, year: int, rows: pa.Table) -> str:
    """`rows` committed as `year` of the Iceberg table boston311.service_requests of the lake at `root`: its key."""
    tables = LocalTarget(root).iceberg()
    key = tables.data_key(SILVER_ZONE, SILVER_TABLE, year)
    (root / key).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, root / key)
    tables.replace_year(tables.open(SILVER_ZONE, SILVER_TABLE, rows.schema), year, key, rows.num_rows, "samples", None)
    return key


@pytest.fixture(scope="session")
def silver_rows() -> pa.Table:
    return silver_sample_rows()


@pytest.fixture
def gold_lake_home(tmp_path: Path) -> Path:
    """An embedded lake holding the silver samples and every gold year built from them."""
    home = tmp_path / "gold_lake"
    years = write_silver_samples(home)
    tables = LocalTarget(home).iceberg()
    for table in GOLD_TABLES:
        for year in years:
            build_gold_partition(tables, table, year)
    return home
