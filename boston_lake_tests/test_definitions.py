"""The code location loads for each target, and bad configuration fails at load time naming the variable."""

import os
import subprocess
import sys

import pytest

from boston_lake.definitions import build_definitions
from boston_lake.defs.ingest.jobs import INGEST_RUN_SIZE
from boston_lake.defs.keys import ingest_job_name
from boston_lake.lake.settings import Settings
from boston_lake.lake.tables import TABLES

EXPECTED_ASSETS = {
    f"{layer}/{table}" for layer in ("raw", "bronze", "catalog") for table in ("legacy_requests", "new_system_requests")
} | {"silver/service_requests", "gold/service_levels", "gold/intake"}


def test_local_definitions_hold_the_assets_checks_jobs_sensor_and_schedules(local_defs):
    graph = local_defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == EXPECTED_ASSETS
    assert len(graph.asset_check_keys) == 20
    assert [s.name for s in local_defs.sensors] == [
        "crawl_landed_bronze",
        "rebuild_silver_on_bronze_change",
        "gold_follows_silver",
        "retry_undone_gold",
        "retry_raw_years_alone",
    ]
    assert all(sensor.default_status.value == "RUNNING" for sensor in local_defs.sensors)
    crawl = graph.get(next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "catalog/legacy_requests"))
    assert crawl.pools == {"boston_lake_crawler"}
    silver = graph.get(next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "silver/service_requests"))
    assert silver.pools == {"boston_lake_crawler"}  # one writer of the catalogs at a time
    assert {s.name for s in local_defs.schedules} == {
        "refresh_legacy_requests",
        "refresh_new_system_requests",
        "iceberg_housekeeping_daily",
    }
    legacy = graph.get(next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "raw/legacy_requests"))
    assert legacy.partitions_def.get_first_partition_key() == "2011"
    assert legacy.backfill_policy.max_partitions_per_run is None  # single run


def test_only_an_ecs_launcher_gets_runs_sized_by_ecs_tags(tmp_path):
    def ingest_tags(environment: dict[str, str]) -> list[dict[str, str]]:
        definitions = build_definitions(Settings.from_env({"BOSTON_LAKE_HOME": str(tmp_path), **environment}))
        return [dict(definitions.resolve_job_def(ingest_job_name(table)).tags) for table in TABLES]

    assert ingest_tags({}) == [{}, {}]
    assert ingest_tags({"BOSTON_LAKE_RUN_LAUNCHER": "ecs"}) == [INGEST_RUN_SIZE, INGEST_RUN_SIZE]


def test_every_run_executes_its_steps_in_its_own_process(local_defs):
    """UI-launched runs of any selection and the shipped jobs alike: no Python started per step."""
    jobs = ["ingest_legacy_requests", "crawl_new_system_requests", "__ASSET_JOB"]
    assert {local_defs.resolve_job_def(name).executor_def.name for name in jobs} == {"in_process"}


def validate(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "boston_lake.definitions"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_dagster_validates_the_code_location(tmp_path):
    result = validate({"BOSTON_LAKE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "env,variable",
    [
        ({"BOSTON_LAKE_TARGET": "azure"}, "BOSTON_LAKE_TARGET"),
        ({"BOSTON_LAKE_PORTAL_URL": "data.boston.gov"}, "BOSTON_LAKE_PORTAL_URL"),
    ],
)
def test_bad_configuration_fails_at_load_naming_the_variable(tmp_path, env, variable):
    result = validate({"BOSTON_LAKE_HOME": str(tmp_path), **env})
    assert result.returncode != 0 and variable in result.stderr + result.stdout


def test_definitions_build_from_settings_alone(tmp_path):
    defs = build_definitions(Settings.from_env({"BOSTON_LAKE_HOME": str(tmp_path)}))
    assert defs.resources["storage"].raw_zone().uri() == str(tmp_path.resolve())


def test_the_instance_config_lets_one_crawl_run_at_a_time(tmp_path):
    from pathlib import Path

    from dagster import DagsterInstance

    (tmp_path / "dagster.yaml").write_text((Path(__file__).parents[1] / ".dagster_home" / "dagster.yaml").read_text())
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.event_log_storage.get_concurrency_info("boston_lake_crawler").limit == 1


@pytest.mark.parametrize(
    ("target", "catalog_kinds"), [("local", {"sqlite", "duckdb", "parquet"}), ("aws", {"aws", "athena", "parquet"})]
)
def test_assets_carry_their_owner_and_the_kinds_of_their_target(tmp_path, target, catalog_kinds):
    buckets = {
        "BOSTON_LAKE_RAW_BUCKET": "raw-a",
        "BOSTON_LAKE_LAKE_BUCKET": "lake-a",
        "BOSTON_LAKE_CODE_BUCKET": "code-a",
    }
    env = {"BOSTON_LAKE_TARGET": target, "BOSTON_LAKE_HOME": str(tmp_path), "AWS_REGION": "us-east-1", **buckets}
    specs = {
        spec.key.to_user_string(): spec
        for assets in build_definitions(Settings.from_env(env)).assets
        for spec in assets.specs
    }
    assert specs["catalog/legacy_requests"].kinds == catalog_kinds
    assert specs["raw/legacy_requests"].kinds == ({"csv", "s3"} if target == "aws" else {"csv"})
    # Silver names the engine that builds it on the target: the Glue job's Spark on aws, DuckDB locally.
    assert specs["silver/service_requests"].kinds == (
        {"parquet", "s3", "spark"} if target == "aws" else {"parquet", "duckdb"}
    )
    assert {owner for spec in specs.values() for owner in spec.owners} == {"team:data-platform"}


@pytest.mark.slow
@pytest.mark.parametrize("target", ["local", "aws"])
def test_loading_the_code_location_leaves_pyiceberg_and_glue_pipes_to_the_runs_that_use_them(tmp_path, target):
    """Every run and the sensors' code server load the code location: what only silver, gold and the Glue job
    need (pyiceberg with SQLAlchemy, dagster_aws.pipes: seconds of imports) is imported by them alone."""
    probe = (
        "import sys, boston_lake.definitions as location; location.defs.resolve_asset_graph(); "
        "print(sorted(name for name in sys.modules if name.startswith(('pyiceberg', 'dagster_aws.pipes'))))"
    )
    env = {
        "BOSTON_LAKE_TARGET": target,
        "BOSTON_LAKE_HOME": str(tmp_path),
        "AWS_REGION": "us-east-1",
        "BOSTON_LAKE_RAW_BUCKET": "raw-a",
        "BOSTON_LAKE_LAKE_BUCKET": "lake-a",
        "BOSTON_LAKE_CODE_BUCKET": "code-a",
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
