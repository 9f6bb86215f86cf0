"""The IAM policy of the role Dagster runs take on ECS: `boston-lake provision --print-task-policy`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fnmatch import fnmatchcase
from typing import Any

import yaml

from boston_lake.lake.aws.resources import ProvisionConfig, run_task_policy
from boston_lake.lake.settings import Settings
from boston_lake.lake.targets import AwsTarget, build_target
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
        "arn:aws:s3:::acme-lake/_athena_results/*",
    }
    resources: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        actions = listed(statement, "Action")
        assert all(action.split(":")[0] in ("s3", "glue", "athena") and "*" not in action for action in actions)
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
        f"arn:aws:athena:eu-west-1:{ACCOUNT}:workgroup/primary",
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


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement of `policy` names `action` on a resource pattern that matches `resource`."""
    return any(
        action in listed(statement, "Action")
        and any(fnmatchcase(resource, pattern) for pattern in listed(statement, "Resource"))
        for statement in policy["Statement"]
    )


def test_the_task_policy_lets_gold_query_athena_as_the_aws_target_does(aws_settings: Settings) -> None:
    """Gold's charts query through the target's Athena engine: every call it makes is granted on the workgroup it
    names, and Athena may write the results where the target tells it to."""
    target = build_target(aws_settings)
    assert isinstance(target, AwsTarget) and aws_settings.aws is not None
    calls: list[tuple[str, dict[str, Any]]] = []
    athena = target.session.client("athena")
    athena.meta.events.register(
        "provide-client-params.athena", lambda model, params, **_: calls.append((model.name, params))
    )
    target.query("SELECT 1")

    started = next(params for name, params in calls if name == "StartQueryExecution")
    workgroup = f"arn:aws:athena:us-east-1:{ACCOUNT}:workgroup/{started['WorkGroup']}"
    policy = run_task_policy(ProvisionConfig.from_settings(aws_settings.aws), ACCOUNT)
    assert {name for name, _ in calls} >= {"StartQueryExecution", "GetQueryExecution", "GetQueryResults"}
    for name in {name for name, _ in calls} | {"StopQueryExecution"}:  # Stop: a query that times out
        assert allows(policy, f"athena:{name}", workgroup), name
    output = started["ResultConfiguration"]["OutputLocation"]
    assert output == f"s3://{aws_settings.aws.lake_bucket}/_athena_results/"
    bucket, _, prefix = output.removeprefix("s3://").partition("/")
    result_object = f"arn:aws:s3:::{bucket}/{prefix}0b5e2c1e-query-id.csv"
    for action in ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"):
        assert allows(policy, action, result_object), action
    assert allows(policy, "s3:GetBucketLocation", f"arn:aws:s3:::{bucket}")
