"""The IAM policy of the role Dagster runs take on ECS: `boston-lake provision --print-task-policy`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from boston_lake.lake.aws.resources import ProvisionConfig, run_task_policy
from boston_lake_tests.support.deploy_files import DEPLOY

ACCOUNT = "123456789012"  # moto's account


def listed(statement: dict, element: str) -> list[str]:
    value = statement[element]
    return value if isinstance(value, list) else [value]


def test_the_task_policy_names_only_our_prefixes_database_and_crawler():
    config = ProvisionConfig(
        region="eu-west-1", raw_bucket="acme-raw", lake_bucket="acme-lake", code_bucket="acme-code"
    )
    policy = run_task_policy(config, ACCOUNT)
    glue = f"arn:aws:glue:eu-west-1:{ACCOUNT}"
    writable = {
        "arn:aws:s3:::acme-raw/raw/boston311/legacy_requests/*",
        "arn:aws:s3:::acme-raw/raw/boston311/new_system_requests/*",
        "arn:aws:s3:::acme-raw/_locks/work/*",
        "arn:aws:s3:::acme-lake/bronze/*",
        "arn:aws:s3:::acme-lake/silver/*",
        "arn:aws:s3:::acme-lake/gold/*",
        "arn:aws:s3:::acme-lake/_refused/*",
        "arn:aws:s3:::acme-lake/_meta/bronze/*",
        "arn:aws:s3:::acme-lake/_locks/crawler/*",
        "arn:aws:s3:::acme-lake/_locks/work/*",
        "arn:aws:s3:::acme-lake/_dagster/compute_logs/*",
        "arn:aws:s3:::acme-lake/_pipes/*",
    }
    resources: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        actions = listed(statement, "Action")
        assert all(action.split(":")[0] in ("s3", "glue") and "*" not in action for action in actions), actions
        resources.update(listed(statement, "Resource"))
        if "s3:PutObject" in actions or "s3:DeleteObject" in actions:
            assert set(listed(statement, "Resource")) <= writable, statement
        if "s3:ListBucket" in actions:
            assert statement["Condition"]["StringLike"]["s3:prefix"], statement
    assert resources == writable | {
        "arn:aws:s3:::acme-raw",
        "arn:aws:s3:::acme-lake",
        f"{glue}:catalog",
        f"{glue}:database/boston311",
        f"{glue}:table/boston311/*",
        f"{glue}:userDefinedFunction/boston311/*",
        f"{glue}:crawler/boston311-bronze",
        f"{glue}:job/boston-lake-silver",
    }
    assert not any("acme-code" in resource for resource in resources), "runs never touch the code bucket"


def test_the_run_log_prefix_the_policy_grants_is_the_one_the_ecs_instance_writes():
    config = ProvisionConfig(
        region="us-east-1", raw_bucket="acme-raw", lake_bucket="acme-lake", code_bucket="acme-code"
    )
    prefix = yaml.safe_load((DEPLOY / "ecs" / "dagster.yaml").read_text())["compute_logs"]["config"]["prefix"]
    resources = {
        resource
        for statement in run_task_policy(config, ACCOUNT)["Statement"]
        for resource in listed(statement, "Resource")
    }
    assert f"arn:aws:s3:::acme-lake/{prefix}/*" in resources


def test_print_task_policy_prints_it_for_the_callers_account_and_changes_nothing(aws_environment, aws_client):
    before = aws_client("iam").list_roles()["Roles"]
    result = subprocess.run(
        [sys.executable, "-m", "boston_lake.cli", "provision", "--print-task-policy"],
        env={**os.environ, **aws_environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    config = ProvisionConfig(
        region="us-east-1",
        raw_bucket=aws_environment["BOSTON_LAKE_RAW_BUCKET"],
        lake_bucket=aws_environment["BOSTON_LAKE_LAKE_BUCKET"],
        code_bucket=aws_environment["BOSTON_LAKE_CODE_BUCKET"],
    )
    assert json.loads(result.stdout) == run_task_policy(config, ACCOUNT)
    assert aws_client("iam").list_roles()["Roles"] == before
