"""The same assets, checks and sensor on the aws target, against a moto server over real HTTP."""

import os
import subprocess
import sys
from dataclasses import replace

import pyarrow.parquet as pq
import pytest
from dagster import build_sensor_context, materialize

from boston_lake.defs.catalog import CATALOG_ASSETS
from boston_lake.defs.resources import build_resources
from boston_lake.lake.aws.provision import AwsClients, apply, plan
from boston_lake.lake.aws.resources import ProvisionConfig
from boston_lake.lake.settings import Settings
from boston_lake.lake.targets import AwsTarget

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def run(defs, instance, job, *, year=None, years=None, tags=None):
    all_tags = {**({RANGE[0]: years[0], RANGE[1]: years[1]} if years else {}), **(tags or {})}
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, partition_key=year, tags=all_tags, run_config=QUIET, raise_on_error=False
    )


def crawl_as_the_sensor_asks(defs, instance):
    tick = defs.resolve_sensor_def("crawl_landed_bronze").evaluate_tick(
        build_sensor_context(instance=instance, definitions=defs)
    )
    for request in tick.run_requests:
        assert run(defs, instance, request.job_name, tags=dict(request.tags)).success
    return tick.run_requests


def keys(s3, bucket, prefix=""):
    return sorted(
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    )


# Every layer from the portal to the Glue catalog on moto, in Dagster runs: the slow tier.
@pytest.mark.slow
def test_portal_to_glue_on_s3_with_a_direct_crawl(aws_defs, dagster_instance, aws_client, aws_buckets):
    assert run(aws_defs, dagster_instance, "ingest_legacy_requests", year="2022").success  # legacy v1
    assert run(aws_defs, dagster_instance, "ingest_legacy_requests", year="2013").success  # legacy v2
    assert run(aws_defs, dagster_instance, "ingest_new_system_requests", years=("2025", "2026")).success
    requests = crawl_as_the_sensor_asks(aws_defs, dagster_instance)
    assert sorted(r.job_name for r in requests) == [
        "crawl_legacy_requests",
        "crawl_legacy_requests",
        "crawl_new_system_requests",
    ]

    s3, glue = aws_client("s3"), aws_client("glue")
    raw = keys(s3, aws_buckets.raw, "raw/boston311/legacy_requests/year=2022/")
    assert raw == [
        "raw/boston311/legacy_requests/year=2022/_manifest.json",
        "raw/boston311/legacy_requests/year=2022/legacy_v1_2022-01_qsv_boston311-100.csv",
    ]
    bronze = keys(s3, aws_buckets.lake, "bronze/")
    assert "bronze/boston311/legacy_requests/year=2013/part-00000.parquet" in bronze
    assert "bronze/boston311/new_system_requests/year=2026/part-00000.parquet" in bronze
    for bucket, key in [(aws_buckets.raw, raw[1]), (aws_buckets.lake, bronze[0])]:
        assert s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"

    table = glue.get_table(DatabaseName="boston311", Name="legacy_requests")["Table"]
    columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert {"target_dt", "sla_target_dt", "geom_4326"} <= set(columns)
    assert table["StorageDescriptor"]["Location"] == f"s3://{aws_buckets.lake}/bronze/boston311/legacy_requests/"
    assert table["Parameters"]["classification"] == "parquet" and table["Parameters"]["recordCount"] == "800"
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    partitions = glue.get_partitions(DatabaseName="boston311", TableName="legacy_requests")["Partitions"]
    assert sorted(p["Values"][0] for p in partitions) == ["2013", "2022"]
    new_system = glue.get_partitions(DatabaseName="boston311", TableName="new_system_requests")["Partitions"]
    assert sorted((p["Values"][0], p["Parameters"]["recordCount"]) for p in new_system) == [
        ("2025", "4134"),
        ("2026", "1339"),
    ]
    versions = glue.get_table_versions(DatabaseName="boston311", TableName="legacy_requests")["TableVersions"]
    assert len(versions) >= 1


@pytest.mark.slow
def test_checks_pass_on_the_aws_target(aws_defs, dagster_instance):
    result = run(aws_defs, dagster_instance, "ingest_legacy_requests", year="2022")
    assert all(e.passed for e in result.get_asset_check_evaluations())
    crawled = run(aws_defs, dagster_instance, "crawl_legacy_requests", year="2022")
    checks = {e.check_name: e.passed for e in crawled.get_asset_check_evaluations()}
    assert checks == {
        "bronze_partitions_registered": True,
        "record_count_matches_bronze": True,
        "schema_unchanged": True,
    }


@pytest.mark.slow
def test_an_unchanged_source_writes_nothing_to_s3(aws_defs, dagster_instance, aws_client, aws_buckets):
    assert run(aws_defs, dagster_instance, "ingest_legacy_requests", year="2022").success
    s3 = aws_client("s3")
    before = {k: s3.head_object(Bucket=aws_buckets.lake, Key=k)["ETag"] for k in keys(s3, aws_buckets.lake)}
    raw_before = keys(s3, aws_buckets.raw)
    assert run(aws_defs, dagster_instance, "ingest_legacy_requests", year="2022").success
    assert {k: s3.head_object(Bucket=aws_buckets.lake, Key=k)["ETag"] for k in keys(s3, aws_buckets.lake)} == before
    assert keys(s3, aws_buckets.raw) == raw_before


@pytest.fixture
def provisioned(aws_settings, aws_client):
    """Buckets, database, role and the managed crawler, as `boston-lake provision` leaves them."""
    config = ProvisionConfig.from_settings(aws_settings.aws)
    apply(
        plan(config, AwsClients(aws_client("s3"), aws_client("glue"), aws_client("iam"), aws_client("sts"))),
        __import__("logging").getLogger("test"),
    )
    return config


def glue_mode_resources(settings: Settings):
    """The aws target with BOSTON_LAKE_CRAWLER=glue, polling the crawler every 50 ms instead of every 5 s."""
    glue_mode = AwsTarget(replace(settings.aws, crawler_mode="glue"), crawl_poll_seconds=0.05)
    return build_resources(settings, glue_mode)


@pytest.mark.slow
def test_glue_mode_runs_the_managed_crawler_and_verifies_its_partitions(
    aws_settings, aws_defs, dagster_instance, provisioned, aws_env
):
    aws_env.set_transition("glue::crawl", {"progression": "immediate"})
    assert run(aws_defs, dagster_instance, "ingest_legacy_requests", year="2022").success
    resources = glue_mode_resources(aws_settings)
    # moto's crawler never crawls: what a real crawl registers, our direct crawler registers beforehand.
    missing = materialize(
        [CATALOG_ASSETS[0]], partition_key="2022", resources=resources, instance=dagster_instance, raise_on_error=False
    )
    assert not missing.success
    error = str(next(e for e in missing.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error)
    assert "completed but did not register boston311.legacy_requests" in error
    assert run(aws_defs, dagster_instance, "crawl_legacy_requests", year="2022").success  # direct mode registers
    found = materialize([CATALOG_ASSETS[0]], partition_key="2022", resources=resources, instance=dagster_instance)
    assert found.success
    summary = found.asset_materializations_for_node("catalog__legacy_requests")[0].metadata
    assert summary["dagster/table_name"].value == "boston311.legacy_requests"


@pytest.mark.slow
def test_athena_answers_boston_lake_query(aws_environment, aws_env):
    aws_env.queue_athena_results(
        {
            "rows": [
                {"Data": [{"VarCharValue": "year"}, {"VarCharValue": "n"}]},
                {"Data": [{"VarCharValue": "2022"}, {"VarCharValue": "100"}]},
            ],
            "column_info": [{"Name": "year", "Type": "varchar"}, {"Name": "n", "Type": "bigint"}],
        }
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "boston_lake.cli",
            "query",
            "SELECT year, count(*) AS n FROM boston311.legacy_requests GROUP BY 1",
            "--format",
            "csv",
        ],
        env={**os.environ, **aws_environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['"year","n"', '"2022",100']


@pytest.mark.slow
def test_a_dagster_cli_run_in_a_subprocess_reaches_moto_through_aws_endpoint_url(
    aws_environment, aws_client, aws_buckets, tmp_path
):
    env = {**os.environ, **aws_environment, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    (tmp_path / "dagster_home").mkdir()
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "boston_lake.definitions",
            "--select",
            "raw/legacy_requests,bronze/legacy_requests",
            "--partition",
            "2022",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    s3 = aws_client("s3")
    key = "bronze/boston311/legacy_requests/year=2022/part-00000.parquet"
    body = s3.get_object(Bucket=aws_buckets.lake, Key=key)["Body"].read()
    (tmp_path / "part.parquet").write_bytes(body)
    assert pq.read_metadata(tmp_path / "part.parquet").num_rows == 100


@pytest.mark.slow  # three provision runs as subprocesses against moto
def test_provision_dry_run_then_apply_then_nothing_to_change(aws_environment, aws_env):
    env = {**os.environ, **aws_environment}

    def provision(*args):
        return subprocess.run(
            [sys.executable, "-m", "boston_lake.cli", "provision", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    dry = provision("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "to create" in dry.stdout and "crawler" in dry.stdout.lower()
    applied = provision()
    assert applied.returncode == 0, applied.stderr
    again = provision("--dry-run")
    assert "Nothing to change" in again.stdout


def test_missing_aws_settings_fail_at_load_naming_the_variable(aws_environment):
    incomplete = {k: v for k, v in aws_environment.items() if k != "BOSTON_LAKE_CODE_BUCKET"}
    with pytest.raises(ValueError, match="BOSTON_LAKE_CODE_BUCKET"):
        Settings.from_env(incomplete)
