"""deploy/dagster.yaml and deploy/ecs/dagster.yaml loaded by Dagster itself (its config schema, its classes),
against a real PostgreSQL and, for ECS, boto3 aimed at the moto server. What needs a real ECS cluster (the
launcher reading its own task, RunTask, Fargate) is listed in docs/deploy.md instead."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRun
from dagster._core.instance.config import PoolGranularity
from dagster._core.storage.compute_log_manager import ComputeIOType
from dagster_aws.ecs import EcsRunLauncher
from dagster_aws.ecs.container_context import EcsContainerContext
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_postgres.run_storage import PostgresRunStorage

from boston_lake.definitions import build_definitions
from boston_lake.defs.ingest.jobs import INGEST_RUN_SIZE
from boston_lake.defs.keys import ingest_job_name
from boston_lake.lake.settings import Settings
from boston_lake.lake.tables import TABLES
from boston_lake_tests.support.deploy_files import DEPLOY

# Fargate's task sizes: memory (MiB) allowed for each CPU value (ECS developer guide, "Task size").
FARGATE_MEMORY_MIB = {
    "256": {512, 1024, 2048},
    "512": set(range(1024, 4097, 1024)),
    "1024": set(range(2048, 8193, 1024)),
    "2048": set(range(4096, 16385, 1024)),
    "4096": set(range(8192, 30721, 1024)),
}
ACCOUNT = "123456789012"
ECS_SETTINGS = {
    "BOSTON_LAKE_TASK_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/boston-lake-run",
    "BOSTON_LAKE_EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/boston-lake-ecs-execution",
    "BOSTON_LAKE_ECS_LOG_GROUP": "/ecs/boston-lake-runs",
    "DAGSTER_POSTGRES_URL_SECRET_ARN": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:dagster-postgres-AbCdEf",
    "BOSTON_LAKE_LAKE_BUCKET": "acme-boston311-lake",
    "BOSTON_LAKE_RUN_LAUNCHER": "ecs",
}


def instance_from(config: Path, home: Path) -> DagsterInstance:
    home.mkdir(exist_ok=True)
    shutil.copyfile(config, home / "dagster.yaml")
    return DagsterInstance.from_config(str(home))


@pytest.fixture
def instance_env(postgres, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres.url())


def test_the_compose_instance_is_postgres_with_a_queue_and_a_crawler_pool_of_one(instance_env, tmp_path):
    with instance_from(DEPLOY / "dagster.yaml", tmp_path / "home") as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        concurrency = instance.get_concurrency_config()
        pools, queue = concurrency.pool_config, concurrency.run_queue_config
        assert (pools.default_pool_limit, pools.pool_granularity) == (1, PoolGranularity.RUN)
        assert queue.max_concurrent_runs == 4
        assert queue.tag_concurrency_limits == [{"key": "dagster/backfill", "limit": 2}]
        assert instance.run_monitoring_enabled


def test_a_bare_postgresql_url_does_not_load_so_the_driver_is_named(postgres, monkeypatch, tmp_path):
    # docs/deploy.md and deploy/dagster.yaml say to write postgresql+psycopg2://: SQLAlchemy 2.1 maps a bare
    # postgresql:// to psycopg 3, which the image does not install.
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres.url().replace("postgresql+psycopg2://", "postgresql://"))
    with pytest.raises(ModuleNotFoundError, match="psycopg"):
        instance_from(DEPLOY / "dagster.yaml", tmp_path / "home")


def test_the_ecs_instance_shares_every_other_section_with_the_compose_one():
    compose, ecs = (
        yaml.safe_load(path.read_text()) for path in (DEPLOY / "dagster.yaml", DEPLOY / "ecs" / "dagster.yaml")
    )
    ecs_only = {"run_launcher", "compute_logs"}
    assert {key: value for key, value in ecs.items() if key not in ecs_only} == {
        key: value for key, value in compose.items() if key not in ecs_only
    }


def test_the_ecs_instance_launches_runs_as_fargate_tasks_with_secrets_from_secrets_manager(
    instance_env, aws_env, monkeypatch, tmp_path
):
    for name, value in ECS_SETTINGS.items():
        monkeypatch.setenv(name, value)
    with instance_from(DEPLOY / "ecs" / "dagster.yaml", tmp_path / "home") as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, EcsRunLauncher)
        assert launcher.task_role_arn == ECS_SETTINGS["BOSTON_LAKE_TASK_ROLE_ARN"]
        assert launcher.execution_role_arn == ECS_SETTINGS["BOSTON_LAKE_EXECUTION_ROLE_ARN"]
        assert launcher.task_definition_dict["requires_compatibilities"] == ["FARGATE"]
        # The database URL reaches runs only as a secret ECS resolves; no secret is found by tag.
        assert launcher.secrets == [
            {"name": "DAGSTER_POSTGRES_URL", "valueFrom": ECS_SETTINGS["DAGSTER_POSTGRES_URL_SECRET_ARN"]}
        ]
        assert launcher.secrets_tags == []

        defs = build_definitions(Settings.from_env(ECS_SETTINGS))  # the code server's environment names ecs

        def size_of(job_name: str) -> dict[str, str]:
            tags = defs.resolve_job_def(job_name).tags
            run = DagsterRun(job_name=job_name, run_id=str(uuid.uuid4()), tags=dict(tags))
            return dict(launcher.get_cpu_and_memory_overrides(EcsContainerContext.create_for_run(run, launcher), run))

        ingest_size = {"cpu": INGEST_RUN_SIZE["ecs/cpu"], "memory": INGEST_RUN_SIZE["ecs/memory"]}
        for table in TABLES:
            assert size_of(ingest_job_name(table)) == ingest_size, table.name
        default_size = size_of("crawl_legacy_requests")
        assert default_size == launcher.run_resources
        for size in (ingest_size, default_size):
            assert int(size["memory"]) in FARGATE_MEMORY_MIB[size["cpu"]], f"Fargate has no task size {size}"


def test_ecs_run_logs_land_in_the_lake_bucket_under_the_prefix_the_task_role_may_write(
    instance_env, aws_env, aws_client, monkeypatch, tmp_path
):
    for name, value in ECS_SETTINGS.items():
        monkeypatch.setenv(name, value)
    aws_client("s3").create_bucket(Bucket=ECS_SETTINGS["BOSTON_LAKE_LAKE_BUCKET"])
    with instance_from(DEPLOY / "ecs" / "dagster.yaml", tmp_path / "home") as instance:
        logs = instance.compute_log_manager
        assert isinstance(logs, S3ComputeLogManager)
        log_key = ["run-1", "compute_logs", "bronze"]
        with logs.open_log_stream(log_key, ComputeIOType.STDOUT) as stream:
            stream.write("converted 2013\n")
        logs.upload_to_cloud_storage(log_key, ComputeIOType.STDOUT)
    listed = aws_client("s3").list_objects_v2(Bucket=ECS_SETTINGS["BOSTON_LAKE_LAKE_BUCKET"])
    prefix = yaml.safe_load((DEPLOY / "ecs" / "dagster.yaml").read_text())["compute_logs"]["config"]["prefix"]
    keys = [item["Key"] for item in listed["Contents"]]
    assert keys and all(key.startswith(f"{prefix}/") and "/run-1/" in key for key in keys), keys
