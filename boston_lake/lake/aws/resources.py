"""The lake's AWS resources as they should be: the settings they are made from, the crawler role's
least-privilege policy and the managed crawler's definition. provision.py brings AWS to this description.

The crawler's role gets only what the lake needs: read the raw and code buckets, read/write bronze/ and
silver/ of the lake bucket, the Glue catalog of our database, and the Glue log groups. The role Dagster
runs take on ECS (`run_task_policy`) gets only what raw, bronze, the crawl and launching the silver job do; the
silver Glue job has a role of its own (`silver_job_role_policy`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from boston_lake.lake import layout, settings
from boston_lake.lake.aws.glue import LOCK_PREFIX
from boston_lake.lake.aws.s3 import ServerSideEncryption
from boston_lake.lake.settings import (
    DEFAULT_CRAWLER_NAME,
    DEFAULT_ROLE_NAME,
    SILVER_JOB_NAME,
    SILVER_JOB_ROLE_NAME,
    AwsSettings,
)
from boston_lake.lake.tables import DATABASE, TABLES
from boston_lake.lake.zones.gold import GOLD_ZONE
from boston_lake.lake.zones.silver.glue_build import PIPES_PREFIX, SCRIPT_PREFIX

INLINE_POLICY_NAME = "boston-lake-least-privilege"
LAKE_PREFIXES = ("bronze/", "silver/")
# Bookkeeping (rejects, manifests, history, staging) sits beside the data under `_`/`.` names: never crawl it.
# `**/_*` matches such a file at any depth, `**/_*/**` everything inside such a folder.
CRAWLER_EXCLUSIONS = ["**/_*", "**/_*/**", "**/.*", "**/.*/**"]
SCHEMA_CHANGE_POLICY = {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "DEPRECATE_IN_DATABASE"}
# Partitions are republished in place (same folder, new file), which "new folders only" would never see.
RECRAWL_POLICY = {"RecrawlBehavior": "CRAWL_EVERYTHING"}
CRAWLER_CONFIGURATION = {
    "Version": 1.0,
    # s3://<lake>/bronze/boston311/<table>/ is level 4 (the bucket is 1): one table per folder there, even
    # when legacy v1 and v2 years differ too much for CombineCompatibleSchemas to merge them on its own.
    "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas", "TableLevelConfiguration": 4},
    "CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}},
}
# Run logs of Dagster runs on ECS (deploy/ecs/dagster.yaml's compute_logs prefix), in the lake bucket.
RUN_LOG_PREFIX = "_dagster/compute_logs/"
# What AthenaQueryEngine calls (lake/aws/athena.py): start, watch, read and (on timeout) stop a query.
ATHENA_QUERY_ACTIONS = (
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:StartQueryExecution",
    "athena:StopQueryExecution",
)
CATALOG_ACTIONS = (
    "GetDatabase",
    "GetDatabases",
    "GetTable",
    "GetTables",
    "CreateTable",
    "UpdateTable",
    "GetPartition",
    "GetPartitions",
    "BatchGetPartition",
    "CreatePartition",
    "BatchCreatePartition",
    "UpdatePartition",
    "BatchUpdatePartition",
    "DeletePartition",
    "BatchDeletePartition",
    "GetUserDefinedFunction",
    "GetUserDefinedFunctions",
)
# The silver Glue job: Glue 5.0 (Spark 3.5.4, Python 3.11), the smallest Spark job Glue runs (2 G.1X workers =
# 2 DPU), one hour at most, and at most two years at once (a third StartJobRun is refused with Glue's message).
SILVER_JOB_GLUE_VERSION = "5.0"
SILVER_JOB_WORKER_TYPE = "G.1X"
SILVER_JOB_WORKERS = 2
SILVER_JOB_TIMEOUT_MINUTES = 60
SILVER_JOB_MAX_CONCURRENT_RUNS = 2
PIPES_LIFECYCLE_RULE_ID = "boston-lake-expire-pipes"
PIPES_EXPIRATION_DAYS = 1
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}

# Each checked field and the parser (from settings, so one rule serves both) that checks it.
_NAME_RULES = {
    "raw_bucket": settings.bucket_name,
    "lake_bucket": settings.bucket_name,
    "code_bucket": settings.bucket_name,
    "database": settings.database_name,
    "role_name": settings.role_name,
    "role_path": settings.role_path,
    "crawler_name": settings.crawler_name,
    "silver_job_name": settings.glue_job_name,
    "silver_role_name": settings.role_name,
}


@dataclass(frozen=True)
class ProvisionConfig:
    region: str
    raw_bucket: str
    lake_bucket: str
    code_bucket: str
    database: str = DATABASE
    role_name: str = DEFAULT_ROLE_NAME
    role_path: str = "/"
    crawler_name: str = DEFAULT_CRAWLER_NAME
    silver_job_name: str = SILVER_JOB_NAME
    silver_role_name: str = SILVER_JOB_ROLE_NAME
    sse: str = "AES256"
    kms_key_id: str | None = None
    athena_workgroup: str = "primary"
    athena_output: str = ""  # s3://bucket/prefix/ of Athena's results; empty: `_athena_results/` of the lake bucket

    def __post_init__(self) -> None:
        if not self.region:
            raise ValueError("region is empty: name the AWS region the lake lives in, such as us-east-1")
        for setting, parse in _NAME_RULES.items():
            value = getattr(self, setting)
            try:
                parse(value)
            except ValueError as error:
                raise ValueError(f"{setting}={value!r} {error}") from error
        buckets = (self.raw_bucket, self.lake_bucket, self.code_bucket)
        if len(set(buckets)) < len(buckets):
            raise ValueError(f"raw_bucket, lake_bucket and code_bucket must differ, got {', '.join(buckets)}")
        try:
            ServerSideEncryption(self.sse, self.kms_key_id)
        except ValueError as error:
            raise ValueError(f"sse={self.sse!r}, kms_key_id={self.kms_key_id!r}: {error}") from error
        if self.kms_key_id:
            try:
                settings.kms_key_id(self.kms_key_id)
            except ValueError as error:
                raise ValueError(f"kms_key_id={self.kms_key_id!r} {error}") from error

    @classmethod
    def from_settings(cls, aws: AwsSettings) -> ProvisionConfig:
        return cls(
            region=aws.region,
            raw_bucket=aws.raw_bucket,
            lake_bucket=aws.lake_bucket,
            code_bucket=aws.code_bucket,
            database=aws.database,
            role_name=aws.role.name if aws.role else DEFAULT_ROLE_NAME,
            role_path=aws.role.path if aws.role else "/",
            crawler_name=aws.crawler_name,
            silver_job_name=aws.silver_job_name,
            silver_role_name=aws.silver_role_name,
            sse=aws.sse,
            kms_key_id=aws.kms_key_id,
            athena_workgroup=aws.athena_workgroup,
            athena_output=aws.athena_output,
        )

    @property
    def encryption(self) -> ServerSideEncryption:
        return ServerSideEncryption(self.sse, self.kms_key_id)

    @property
    def buckets(self) -> tuple[str, str, str]:
        return self.raw_bucket, self.lake_bucket, self.code_bucket

    @property
    def athena_results(self) -> tuple[str, str]:
        """The bucket and key prefix Athena writes query results to (what the gold charts' queries need)."""
        location = self.athena_output or f"s3://{self.lake_bucket}/{settings.ATHENA_RESULTS_PREFIX}"
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"


def glue_trust_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }


@dataclass(frozen=True)
class _Arns:
    """ARNs of one account, region and partition, for the policies below."""

    partition: str
    region: str
    account_id: str

    def bucket(self, name: str, suffix: str = "") -> str:
        return f"arn:{self.partition}:s3:::{name}{suffix}"

    def regional(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"

    def catalog_of(self, database: str) -> list[str]:
        """The Glue catalog of one database: Glue checks the catalog, the database and the table."""
        resources = ("catalog", f"database/{database}", f"table/{database}/*", f"userDefinedFunction/{database}/*")
        return [self.regional("glue", resource) for resource in resources]

    def athena_workgroup(self, name: str) -> str:
        return self.regional("athena", f"workgroup/{name}")

    def kms_key(self, key: str) -> str:
        return key if key.startswith("arn:") else self.regional("kms", f"key/{key}")


def _allow(sid: str, actions: list[str], resources: list[str], **condition: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **condition}


def _list_under(sid: str, bucket_arn: str, prefixes: list[str]) -> dict[str, Any]:
    """ListBucket on a bucket, for keys under these prefixes only."""
    condition = {"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}}
    return _allow(sid, ["s3:ListBucket"], [bucket_arn], Condition=condition)


def _use_lake_key(config: ProvisionConfig, arns: _Arns) -> list[dict[str, Any]]:
    if not config.kms_key_id:
        return []
    return [_allow("UseLakeKey", ["kms:Decrypt", "kms:GenerateDataKey"], [arns.kms_key(config.kms_key_id)])]


def crawler_role_policy(config: ProvisionConfig, account_id: str, partition: str = "aws") -> dict[str, Any]:
    """The role's only permissions: our buckets and prefixes, our database's catalog, Glue's log groups."""
    arns = _Arns(partition, config.region, account_id)
    raw, lake, code = config.raw_bucket, config.lake_bucket, config.code_bucket
    statements = [
        _allow("LocateBuckets", ["s3:GetBucketLocation"], [arns.bucket(name) for name in config.buckets]),
        _allow("ListRawAndCode", ["s3:ListBucket"], [arns.bucket(raw), arns.bucket(code)]),
        _allow("ReadRawAndCode", ["s3:GetObject"], [arns.bucket(raw, "/*"), arns.bucket(code, "/*")]),
        _list_under("ListLakeZones", arns.bucket(lake), list(LAKE_PREFIXES)),
        _allow(
            "ReadWriteLakeZones",
            ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            [arns.bucket(lake, f"/{prefix}*") for prefix in LAKE_PREFIXES],
        ),
        _allow(
            "CatalogOfOurDatabase",
            sorted(f"glue:{action}" for action in CATALOG_ACTIONS),
            arns.catalog_of(config.database),
        ),
        _allow(
            "GlueLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            [
                arns.regional("logs", f"log-group:{name}")
                for name in ("/aws-glue/crawlers", "/aws-glue/crawlers:*", "/aws-glue/jobs/*")
            ],
        ),
    ]
    return {"Version": "2012-10-17", "Statement": statements + _use_lake_key(config, arns)}


def silver_job_role_policy(config: ProvisionConfig, account_id: str, partition: str = "aws") -> dict[str, Any]:
    """The silver Glue job's only permissions: read its script and bronze/, write silver/ (its staging prefix
    is there), read the pipes context and write its messages under `_pipes/`, write its own log streams."""
    arns = _Arns(partition, config.region, account_id)
    lake, code = config.lake_bucket, config.code_bucket
    bronze, silver = LAKE_PREFIXES
    statements = [
        _allow("LocateBuckets", ["s3:GetBucketLocation"], [arns.bucket(lake), arns.bucket(code)]),
        _allow("ReadScripts", ["s3:GetObject"], [arns.bucket(code, f"/{SCRIPT_PREFIX}*")]),
        _list_under("ListBronzeSilverPipes", arns.bucket(lake), [bronze, silver, PIPES_PREFIX]),
        _allow("ReadBronze", ["s3:GetObject"], [arns.bucket(lake, f"/{bronze}*")]),
        _allow(
            "WriteSilver",
            ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            [arns.bucket(lake, f"/{silver}*")],
        ),
        _allow("PipesContextAndMessages", ["s3:GetObject", "s3:PutObject"], [arns.bucket(lake, f"/{PIPES_PREFIX}*")]),
        _allow(
            "JobLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            [arns.regional("logs", f"log-group:/aws-glue/jobs/{name}") for name in ("*", "*:*")],
        ),
    ]
    return {"Version": "2012-10-17", "Statement": statements + _use_lake_key(config, arns)}


def silver_job_definition(
    config: ProvisionConfig, role_arn: str, script_key: str, pipes_version: str
) -> dict[str, Any]:
    """CreateJob parameters of the silver job (UpdateJob takes the same, less the name, as JobUpdate)."""
    return {
        "Name": config.silver_job_name,
        "Description": "boston_lake: silver/service_requests of one year from bronze (lake/zones/silver/spark_job.py)",
        "Role": role_arn,
        "Command": {
            "Name": "glueetl",
            "ScriptLocation": f"s3://{config.code_bucket}/{script_key}",
            "PythonVersion": "3",
        },
        "DefaultArguments": {
            "--job-language": "python",
            "--additional-python-modules": f"dagster-pipes=={pipes_version}",
        },
        "GlueVersion": SILVER_JOB_GLUE_VERSION,
        "WorkerType": SILVER_JOB_WORKER_TYPE,
        "NumberOfWorkers": SILVER_JOB_WORKERS,
        "Timeout": SILVER_JOB_TIMEOUT_MINUTES,
        "MaxRetries": 0,
        "ExecutionProperty": {"MaxConcurrentRuns": SILVER_JOB_MAX_CONCURRENT_RUNS},
    }


def pipes_lifecycle_rule() -> dict[str, Any]:
    """Pipes context and message objects are spent when the run ends: expire them after a day."""
    return {
        "ID": PIPES_LIFECYCLE_RULE_ID,
        "Filter": {"Prefix": PIPES_PREFIX},
        "Status": "Enabled",
        "Expiration": {"Days": PIPES_EXPIRATION_DAYS},
    }


def run_task_policy(config: ProvisionConfig, account_id: str, partition: str = "aws") -> dict[str, Any]:
    """The only permissions of a Dagster run's task role (ECS, deploy/ecs/dagster.yaml): what raw, bronze, the
    crawl, silver and gold do, gold's charts included (Athena queries in our workgroup, their results in its
    result location). Nothing else: no code bucket, no CreateDatabase or crawler changes (`provision` makes
    those), no IAM."""
    arns = _Arns(partition, config.region, account_id)
    raw, lake = config.raw_bucket, config.lake_bucket
    # `_locks/work/`: each bucket holds the claims of its own zone's partitions (S3ObjectStore.workspace).
    raw_prefixes = [*(layout.raw_table_prefix(table.name) for table in TABLES), layout.WORK_LEASES_PREFIX]
    # `_pipes/`: the context of a silver Glue run goes in, its messages come out (and both are deleted).
    # `gold/`: the gold years; `_refused/`: versions a blocking audit refused, kept until the next attempt;
    # `_meta/bronze/`: bronze's manifests and rejects, outside the tables' locations.
    lake_prefixes = [
        *LAKE_PREFIXES,
        f"{GOLD_ZONE}/",
        layout.meta_key(LAKE_PREFIXES[0], ""),
        layout.REFUSED_PREFIX,
        LOCK_PREFIX,
        layout.WORK_LEASES_PREFIX,
        RUN_LOG_PREFIX,
        PIPES_PREFIX,
    ]
    # Delete: a replaced raw file is copied to _history/ and then removed; bronze replaces its rejects and moves
    # the bookkeeping of a lake laid out before `_meta/`; crawl leases and partition claims are released by
    # deleting them. Multipart uploads carry large files.
    read_write = ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    statements = [
        _allow("LocateBuckets", ["s3:GetBucketLocation"], [arns.bucket(raw), arns.bucket(lake)]),
        _list_under("ListRawZone", arns.bucket(raw), raw_prefixes),
        _allow("ReadWriteRawZone", read_write, [arns.bucket(raw, f"/{prefix}*") for prefix in raw_prefixes]),
        _list_under("ListLakeZonesLeasesAndRunLogs", arns.bucket(lake), lake_prefixes),
        _allow(
            "ReadWriteLakeZonesLeasesAndRunLogs",
            read_write,
            [arns.bucket(lake, f"/{prefix}*") for prefix in lake_prefixes],
        ),
        _allow(
            "CatalogOfOurDatabase",
            sorted(f"glue:{action}" for action in {*CATALOG_ACTIONS, "GetTableVersions"}),
            arns.catalog_of(config.database),
        ),
        _allow(
            "RunOurCrawler",
            ["glue:GetCrawler", "glue:ListCrawls", "glue:StartCrawler"],
            [arns.regional("glue", f"crawler/{config.crawler_name}")],
        ),
        _allow(
            "RunOurSilverJob",
            ["glue:BatchStopJobRun", "glue:GetJobRun", "glue:StartJobRun"],
            [arns.regional("glue", f"job/{config.silver_job_name}")],
        ),
        *_query_with_athena(config, arns),
    ]
    return {"Version": "2012-10-17", "Statement": statements + _use_lake_key(config, arns)}


def _query_with_athena(config: ProvisionConfig, arns: _Arns) -> list[dict[str, Any]]:
    """Gold's charts query silver and gold through Athena: run and read queries in our workgroup only, and let
    Athena write their results (under the caller's identity) to the result location only. Athena reads the tables
    with the role's own S3 and Glue grants above."""
    bucket, prefix = config.athena_results
    return [
        _allow("RunOurAthenaQueries", list(ATHENA_QUERY_ACTIONS), [arns.athena_workgroup(config.athena_workgroup)]),
        _allow("LocateAthenaResults", ["s3:GetBucketLocation"], [arns.bucket(bucket)]),
        _list_under("ListAthenaResults", arns.bucket(bucket), [prefix]),
        _allow(
            "WriteAthenaResults",
            ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
            [arns.bucket(bucket, f"/{prefix}*")],
        ),
    ]


def crawler_definition(config: ProvisionConfig, role_arn: str) -> dict[str, Any]:
    """CreateCrawler/UpdateCrawler parameters: one S3 target per bronze table, bookkeeping excluded."""
    paths = [f"s3://{config.lake_bucket}/{layout.bronze_table_prefix(table.name)}" for table in TABLES]
    targets = [{"Path": path, "Exclusions": CRAWLER_EXCLUSIONS} for path in paths]
    return {
        "Name": config.crawler_name,
        "Role": role_arn,
        "DatabaseName": config.database,
        "Description": "boston_lake: bronze Parquet of Boston 311 requests into the Glue catalog",
        "Targets": {"S3Targets": targets},
        "SchemaChangePolicy": SCHEMA_CHANGE_POLICY,
        "RecrawlPolicy": RECRAWL_POLICY,
        "Configuration": json.dumps(CRAWLER_CONFIGURATION, sort_keys=True),
    }
