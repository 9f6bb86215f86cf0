from __future__ import annotations

import json
import logging
import uuid
from importlib.metadata import version
from typing import Any

import pytest

from boston_lake.lake.aws.provision import CREATE, UNCHANGED, UPDATE, AwsClients, apply, format_plan, plan
from boston_lake.lake.aws.resources import CRAWLER_EXCLUSIONS, INLINE_POLICY_NAME, ProvisionConfig
from boston_lake.lake.aws.session import AwsSession
from boston_lake.lake.zones.silver.glue_build import script_bytes, script_key
from boston_lake_tests.support.moto_server import MotoServer

ACCOUNT = "123456789012"  # moto's account
log = logging.getLogger("test_provision")


@pytest.fixture
def config() -> ProvisionConfig:
    suffix = uuid.uuid4().hex[:10]
    return ProvisionConfig(
        region="us-east-1", raw_bucket=f"raw-{suffix}", lake_bucket=f"lake-{suffix}", code_bucket=f"code-{suffix}"
    )


@pytest.fixture
def clients(aws_env: MotoServer) -> AwsClients:
    return AwsClients.create(AwsSession("us-east-1", {"": aws_env.url}))


def changes(actions) -> dict[str, str]:
    return {action.resource: action.change for action in actions}


def state(config: ProvisionConfig, clients: AwsClients) -> dict[str, Any]:
    """Everything provisioning manages, as AWS describes it (volatile timestamps left out)."""
    described: dict[str, Any] = {}
    for bucket in (config.raw_bucket, config.lake_bucket, config.code_bucket):
        described[bucket] = (
            clients.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"],
            clients.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        )
    described["database"] = clients.glue.get_database(Name=config.database)["Database"]["Name"]
    role = clients.iam.get_role(RoleName=config.role_name)["Role"]
    described["role"] = (role["Arn"], role["AssumeRolePolicyDocument"])
    described["policies"] = clients.iam.list_role_policies(RoleName=config.role_name)["PolicyNames"]
    described["policy"] = clients.iam.get_role_policy(RoleName=config.role_name, PolicyName=INLINE_POLICY_NAME)[
        "PolicyDocument"
    ]
    crawler = clients.glue.get_crawler(Name=config.crawler_name)["Crawler"]
    described["crawler"] = {
        key: crawler[key]
        for key in ("Role", "DatabaseName", "Targets", "SchemaChangePolicy", "RecrawlPolicy", "Configuration")
    }
    return described


def test_a_first_plan_creates_everything_and_changes_nothing_itself(config, clients):
    actions = plan(config, clients)
    assert {action.change for action in actions} == {CREATE}
    assert changes(actions) == {
        **{
            resource: CREATE
            for bucket in (config.raw_bucket, config.lake_bucket, config.code_bucket)
            for resource in (
                f"s3://{bucket}",
                f"s3://{bucket} default encryption",
                f"s3://{bucket} public access block",
            )
        },
        "glue database boston311": CREATE,
        "iam role boston-lake-glue-crawler": CREATE,
        f"iam role boston-lake-glue-crawler inline policy {INLINE_POLICY_NAME}": CREATE,
        "glue crawler boston311-bronze": CREATE,
        f"s3://{config.lake_bucket} lifecycle rule boston-lake-expire-pipes": CREATE,
        f"s3://{config.code_bucket}/{script_key()}": CREATE,
        "iam role boston-lake-glue-silver-job": CREATE,
        f"iam role boston-lake-glue-silver-job inline policy {INLINE_POLICY_NAME}": CREATE,
        "glue job boston-lake-silver": CREATE,
    }
    assert format_plan(actions).endswith("18 to create, 0 to update, 0 unchanged.")
    assert clients.s3.list_buckets()["Buckets"] == []  # a plan is a dry run


def test_apply_builds_the_lake_as_described(config, clients):
    apply(plan(config, clients), log)
    built = state(config, clients)
    for bucket in (config.raw_bucket, config.lake_bucket, config.code_bucket):
        encryption, public_access = built[bucket]
        assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
        assert public_access == {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
    assert built["database"] == "boston311"
    assert built["role"] == (
        f"arn:aws:iam::{ACCOUNT}:role/boston-lake-glue-crawler",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        },
    )
    assert built["policies"] == [INLINE_POLICY_NAME]
    crawler = built["crawler"]
    assert crawler["Role"] == built["role"][0]
    assert crawler["DatabaseName"] == "boston311"
    assert crawler["Targets"] == {
        "S3Targets": [
            {"Path": f"s3://{config.lake_bucket}/bronze/boston311/legacy_requests/", "Exclusions": CRAWLER_EXCLUSIONS},
            {
                "Path": f"s3://{config.lake_bucket}/bronze/boston311/new_system_requests/",
                "Exclusions": CRAWLER_EXCLUSIONS,
            },
        ]
    }
    assert crawler["SchemaChangePolicy"] == {
        "UpdateBehavior": "UPDATE_IN_DATABASE",
        "DeleteBehavior": "DEPRECATE_IN_DATABASE",
    }
    assert json.loads(crawler["Configuration"]) == {
        "Version": 1.0,
        "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas", "TableLevelConfiguration": 4},
        "CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}},
    }


def test_provisioning_twice_changes_nothing_and_says_so(config, clients, caplog):
    apply(plan(config, clients), log)
    before = state(config, clients)
    second = plan(config, clients)
    assert {action.change for action in second} == {UNCHANGED}
    assert format_plan(second).endswith("Nothing to change: every resource is as configured.")
    with caplog.at_level(logging.INFO, logger="test_provision"):
        assert apply(second, log) == []
    assert "nothing to change" in caplog.text
    assert state(config, clients) == before


def test_the_role_policy_names_only_our_buckets_prefixes_database_and_log_groups(config, clients):
    apply(plan(config, clients), log)
    document = clients.iam.get_role_policy(RoleName=config.role_name, PolicyName=INLINE_POLICY_NAME)["PolicyDocument"]
    raw, lake, code, db = config.raw_bucket, config.lake_bucket, config.code_bucket, config.database
    glue, logs = f"arn:aws:glue:us-east-1:{ACCOUNT}", f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:"
    allowed = {
        f"arn:aws:s3:::{raw}",
        f"arn:aws:s3:::{raw}/*",
        f"arn:aws:s3:::{code}",
        f"arn:aws:s3:::{code}/*",
        f"arn:aws:s3:::{lake}",
        f"arn:aws:s3:::{lake}/bronze/*",
        f"arn:aws:s3:::{lake}/silver/*",
        f"{glue}:catalog",
        f"{glue}:database/{db}",
        f"{glue}:table/{db}/*",
        f"{glue}:userDefinedFunction/{db}/*",
        f"{logs}/aws-glue/crawlers",
        f"{logs}/aws-glue/crawlers:*",
        f"{logs}/aws-glue/jobs/*",
    }
    resources: set[str] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "NotResource" not in statement and "NotAction" not in statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(action.split(":")[0] in ("s3", "glue", "logs") and "*" not in action for action in actions), actions
        listed = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        resources.update(listed)
        if f"arn:aws:s3:::{lake}" in listed and "s3:ListBucket" in actions:
            assert statement["Condition"] == {"StringLike": {"s3:prefix": ["bronze/*", "silver/*"]}}
        writes = {"s3:PutObject", "s3:DeleteObject"} & set(actions)
        if writes:
            assert set(listed) == {f"arn:aws:s3:::{lake}/bronze/*", f"arn:aws:s3:::{lake}/silver/*"}
    assert resources == allowed


def test_drift_is_planned_as_updates_and_applying_repairs_it(config, clients):
    apply(plan(config, clients), log)
    clients.s3.delete_bucket_encryption(Bucket=config.lake_bucket)
    clients.s3.put_public_access_block(
        Bucket=config.raw_bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": False,
        },
    )
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    clients.iam.put_role_policy(
        RoleName=config.role_name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(everything)
    )
    anyone = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    clients.iam.update_assume_role_policy(RoleName=config.role_name, PolicyDocument=json.dumps(anyone))

    drifted = plan(config, clients)
    updates = {action.resource: action.reason for action in drifted if action.change == UPDATE}
    role = "iam role boston-lake-glue-crawler"
    assert updates == {
        f"s3://{config.lake_bucket} default encryption": "is not configured; want AES256",
        f"s3://{config.raw_bucket} public access block": "BlockPublicPolicy, RestrictPublicBuckets off; block all",
        f"{role} trust policy": "differs from: trusted by glue.amazonaws.com only",
        f"{role} inline policy {INLINE_POLICY_NAME}": "differs from the least-privilege policy",
    }
    assert {action.change for action in drifted} == {UPDATE, UNCHANGED}
    assert "4 to update" in format_plan(drifted)

    assert len(apply(drifted, log)) == 4
    assert {action.change for action in plan(config, clients)} == {UNCHANGED}


def test_a_bucket_encrypted_differently_is_planned_for_update(config, clients):
    apply(plan(config, clients), log)
    clients.s3.put_bucket_encryption(
        Bucket=config.code_bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
        },
    )
    updates = {action.resource: action.reason for action in plan(config, clients) if action.change == UPDATE}
    assert updates == {f"s3://{config.code_bucket} default encryption": "is aws:kms without bucket keys; want AES256"}


def test_a_crawler_that_drifted_is_planned_for_update_naming_what_differs(config, clients):
    apply(plan(config, clients), log)
    clients.glue.delete_crawler(Name=config.crawler_name)
    clients.glue.create_crawler(
        Name=config.crawler_name,
        Role=f"arn:aws:iam::{ACCOUNT}:role/someone-else",
        DatabaseName=config.database,
        Targets={"S3Targets": [{"Path": f"s3://{config.lake_bucket}/bronze/"}]},
        SchemaChangePolicy={"UpdateBehavior": "LOG", "DeleteBehavior": "DELETE_FROM_DATABASE"},
    )
    crawler = [action for action in plan(config, clients) if action.resource == "glue crawler boston311-bronze"]
    assert [action.change for action in crawler] == [UPDATE]
    reason = crawler[0].reason
    assert "role is 'arn:aws:iam::123456789012:role/someone-else'" in reason
    assert f"S3 targets are [('s3://{config.lake_bucket}/bronze/', [])]" in reason
    assert "SchemaChangePolicy is {'UpdateBehavior': 'LOG', 'DeleteBehavior': 'DELETE_FROM_DATABASE'}" in reason
    assert "configuration is" in reason


def test_kms_encryption_reaches_the_buckets_and_the_role(clients, aws_client):
    key_id = aws_client("kms").create_key(Description="lake key")["KeyMetadata"]["KeyId"]
    suffix = uuid.uuid4().hex[:10]
    config = ProvisionConfig(
        "us-east-1", f"raw-{suffix}", f"lake-{suffix}", f"code-{suffix}", sse="aws:kms", kms_key_id=key_id
    )
    apply(plan(config, clients), log)
    rule = clients.s3.get_bucket_encryption(Bucket=config.lake_bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id}
    assert rule["BucketKeyEnabled"] is True
    policy = clients.iam.get_role_policy(RoleName=config.role_name, PolicyName=INLINE_POLICY_NAME)["PolicyDocument"]
    kms = [statement for statement in policy["Statement"] if statement["Sid"] == "UseLakeKey"]
    assert kms == [
        {
            "Sid": "UseLakeKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": [f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"],
        }
    ]
    assert {action.change for action in plan(config, clients)} == {UNCHANGED}


def test_buckets_outside_us_east_1_are_created_in_their_region(aws_env):
    suffix = uuid.uuid4().hex[:10]
    config = ProvisionConfig("eu-west-1", f"raw-{suffix}", f"lake-{suffix}", f"code-{suffix}")
    clients = AwsClients.create(AwsSession("eu-west-1", {"": aws_env.url}))
    apply(plan(config, clients), log)
    assert clients.s3.get_bucket_location(Bucket=config.raw_bucket)["LocationConstraint"] == "eu-west-1"
    assert clients.glue.get_crawler(Name=config.crawler_name)["Crawler"]["Role"].startswith("arn:aws:iam::")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"raw_bucket": "Raw_Bucket"}, r"raw_bucket='Raw_Bucket' is not an S3 bucket name"),
        ({"code_bucket": "lake-a"}, "must differ"),
        ({"database": "Boston-311"}, r"database='Boston-311' is not a Glue database name"),
        ({"region": ""}, "region is empty"),
        ({"sse": "aws:kms", "kms_key_id": "alias/lake"}, "an IAM policy cannot grant on an alias"),
        (
            {"kms_key_id": "1234abcd-12ab-34cd-56ef-1234567890ab"},
            r"sse='AES256'.*needs server-side encryption 'aws:kms'",
        ),
        ({"sse": "none"}, r"sse='none'.*not supported"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(settings, message):
    values = {
        "region": "us-east-1",
        "raw_bucket": "raw-a",
        "lake_bucket": "lake-a",
        "code_bucket": "code-a",
        **settings,
    }
    with pytest.raises(ValueError, match=message):
        ProvisionConfig(**values)


def test_the_silver_glue_job_runs_the_uploaded_script_with_its_own_role(config, clients):
    apply(plan(config, clients), log)
    job = clients.glue.get_job(JobName="boston-lake-silver")["Job"]
    role = clients.iam.get_role(RoleName="boston-lake-glue-silver-job")["Role"]
    assert job["Role"] == role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/boston-lake-glue-silver-job"
    assert job["Command"] == {
        "Name": "glueetl",
        "ScriptLocation": f"s3://{config.code_bucket}/{script_key()}",
        "PythonVersion": "3",
    }
    assert (job["GlueVersion"], job["WorkerType"], job["NumberOfWorkers"]) == ("5.0", "G.1X", 2)
    assert (job["Timeout"], job["ExecutionProperty"], job["MaxRetries"]) == (60, {"MaxConcurrentRuns": 2}, 0)
    assert job["DefaultArguments"]["--additional-python-modules"] == f"dagster-pipes=={version('dagster-pipes')}"
    uploaded = clients.s3.get_object(Bucket=config.code_bucket, Key=script_key())
    assert uploaded["Body"].read() == script_bytes()
    assert uploaded["ServerSideEncryption"] == "AES256"
    (rule,) = clients.s3.get_bucket_lifecycle_configuration(Bucket=config.lake_bucket)["Rules"]
    assert (rule["ID"], rule["Filter"], rule["Status"], rule["Expiration"]) == (
        "boston-lake-expire-pipes",
        {"Prefix": "_pipes/"},
        "Enabled",
        {"Days": 1},
    )


def test_the_silver_job_role_reads_bronze_and_its_script_and_writes_only_silver_and_pipes(config, clients):
    apply(plan(config, clients), log)
    document = clients.iam.get_role_policy(RoleName="boston-lake-glue-silver-job", PolicyName=INLINE_POLICY_NAME)[
        "PolicyDocument"
    ]
    lake, code = f"arn:aws:s3:::{config.lake_bucket}", f"arn:aws:s3:::{config.code_bucket}"
    grants: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        for action in statement["Action"]:
            assert "*" not in action and action.split(":")[0] in ("s3", "logs"), action
            grants.setdefault(action, set()).update(statement["Resource"])
        if statement["Action"] == ["s3:ListBucket"]:
            assert statement["Condition"] == {"StringLike": {"s3:prefix": ["bronze/*", "silver/*", "_pipes/*"]}}
    assert grants["s3:GetObject"] == {
        f"{code}/glue/silver/*",
        f"{lake}/bronze/*",
        f"{lake}/silver/*",
        f"{lake}/_pipes/*",
    }
    assert grants["s3:PutObject"] == {f"{lake}/silver/*", f"{lake}/_pipes/*"}
    assert grants["s3:DeleteObject"] == {f"{lake}/silver/*"}
    assert grants["s3:ListBucket"] == {lake}
    assert not [action for action in grants if action.startswith("glue:")], "silver is registered by the Dagster run"
    assert grants["logs:PutLogEvents"] == {
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws-glue/jobs/*",
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws-glue/jobs/*:*",
    }


def test_a_new_script_or_sizing_is_planned_as_a_job_update_and_other_lifecycle_rules_are_kept(config, clients):
    apply(plan(config, clients), log)
    job = clients.glue.get_job(JobName="boston-lake-silver")["Job"]
    clients.glue.delete_job(JobName="boston-lake-silver")
    old_script = f"s3://{config.code_bucket}/glue/silver/spark_job-0000000000000000.py"
    clients.glue.create_job(
        Name="boston-lake-silver",
        Role=job["Role"],
        Command={**job["Command"], "ScriptLocation": old_script},
        DefaultArguments=job["DefaultArguments"],
        GlueVersion="4.0",
        WorkerType="G.1X",
        NumberOfWorkers=2,
        Timeout=60,
        MaxRetries=0,
        ExecutionProperty={"MaxConcurrentRuns": 2},
    )
    theirs = {"ID": "theirs", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 7}}
    clients.s3.put_bucket_lifecycle_configuration(Bucket=config.lake_bucket, LifecycleConfiguration={"Rules": [theirs]})

    drifted = {action.resource: action for action in plan(config, clients) if action.change != UNCHANGED}
    assert set(drifted) == {
        "glue job boston-lake-silver",
        f"s3://{config.lake_bucket} lifecycle rule boston-lake-expire-pipes",
    }
    job_update = drifted["glue job boston-lake-silver"]
    assert job_update.change == UPDATE
    assert f"command ScriptLocation is '{old_script}'" in job_update.reason
    assert "GlueVersion is '4.0', want '5.0'" in job_update.reason
    apply([drifted[f"s3://{config.lake_bucket} lifecycle rule boston-lake-expire-pipes"]], log)  # moto has no UpdateJob
    rules = clients.s3.get_bucket_lifecycle_configuration(Bucket=config.lake_bucket)["Rules"]
    assert sorted(rule["ID"] for rule in rules) == ["boston-lake-expire-pipes", "theirs"]
