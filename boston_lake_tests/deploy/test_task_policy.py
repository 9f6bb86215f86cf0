"""The IAM policy of the role Dagster runs take on ECS: `boston-lake provision --print-task-policy`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fnmatch import fnmatchcase
from typing import Any

import pytest
import yaml

from boston_lake.lake import layout
from boston_lake.lake.aws.resources import ProvisionConfig, run_task_policy
from boston_lake.lake.settings import Settings
from boston_lake.lake.tables import LEGACY_REQUESTS
from boston_lake.lake.targets import AwsTarget, build_target
from boston_lake.lake.zones.bronze import BronzeZone
from boston_lake_tests.support.client_lake import LOG, TABLE, YEARS, build_lake
from boston_lake_tests.support.deploy_files import DEPLOY
from boston_lake_tests.support.portal import TestPortal

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


# What a boto3 S3 operation on an object asks IAM for.
S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
    "CopyObject": "s3:PutObject",
}


def object_requests(calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
    """(IAM action, object ARN) of every object operation in `calls`; a copy also reads its source."""
    requests = []
    for name, params in calls:
        if name in S3_OBJECT_ACTIONS:
            requests.append((S3_OBJECT_ACTIONS[name], f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"))
        if name == "CopyObject":
            source = params["CopySource"]  # "bucket/key", or {"Bucket": …, "Key": …}
            if isinstance(source, dict):
                source = f"{source['Bucket']}/{source['Key']}"
            requests.append(("s3:GetObject", f"arn:aws:s3:::{source}"))
    return requests


@pytest.mark.slow  # builds a lake on S3 and Glue
def test_the_task_policy_lets_bronze_keep_its_bookkeeping_in_meta_and_move_an_old_layout(
    aws_settings: Settings, portal: TestPortal
) -> None:
    """Every object the raw and bronze zones read, write, copy or delete on the aws target is granted, from a first
    build (bookkeeping into `_meta/bronze/`) to the move of a lake laid out before `_meta/`."""
    target = build_target(aws_settings)
    assert isinstance(target, AwsTarget) and aws_settings.aws is not None
    policy = run_task_policy(ProvisionConfig.from_settings(aws_settings.aws), ACCOUNT)
    calls: list[tuple[str, dict[str, Any]]] = []
    target.session.client("s3").meta.events.register(
        "provide-client-params.s3", lambda model, params, **_: calls.append((model.name, params))
    )
    build_lake(target, portal)
    built = object_requests(calls)
    assert any(action == "s3:PutObject" and "/_meta/bronze/" in arn for action, arn in built)

    store = target.lake_zone()
    for year in YEARS:
        for key in layout.bronze_bookkeeping_keys(TABLE, year):
            if store.exists(key):
                store.copy(key, layout.before_meta(key))
                store.delete(key)
    calls.clear()
    BronzeZone(target.raw_zone(), store, LOG).build(LEGACY_REQUESTS, YEARS[0])
    moved = object_requests(calls)
    assert {action for action, arn in moved if "/_meta/" in arn} >= {"s3:PutObject"}
    assert any(action == "s3:DeleteObject" and arn.endswith("/_manifest.json") for action, arn in moved)
    for action, arn in built + moved:
        assert allows(policy, action, arn), (action, arn)
