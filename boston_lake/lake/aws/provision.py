"""The lake's AWS resources (as aws_resources.py describes them) brought to that description: plan, then apply.

`plan()` reads what exists and says, resource by resource, what it would create or update and why;
`apply()` carries out exactly that plan. What already matches is left alone and reported unchanged, so a
second run changes nothing and says so, and a dry run shows what a real one would do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from botocore.exceptions import ClientError

from boston_lake.lake.aws.resources import (
    CRAWLER_CONFIGURATION,
    INLINE_POLICY_NAME,
    PIPES_EXPIRATION_DAYS,
    PIPES_LIFECYCLE_RULE_ID,
    PUBLIC_ACCESS_BLOCK,
    ProvisionConfig,
    crawler_definition,
    crawler_role_policy,
    glue_trust_policy,
    pipes_lifecycle_rule,
    run_task_policy,
    silver_job_definition,
    silver_job_role_policy,
)
from boston_lake.lake.aws.session import AwsSession, describe_error, error_code
from boston_lake.lake.errors import LakeError
from boston_lake.lake.log import Log
from boston_lake.lake.tables import TABLES
from boston_lake.lake.zones.silver.glue_build import PIPES_PREFIX, script_bytes, script_key

CREATE = "create"
UPDATE = "update"
UNCHANGED = "unchanged"

_LIST_ELEMENTS = ("Action", "Resource", "NotAction", "NotResource")


class ProvisionError(LakeError, RuntimeError):
    """Provisioning cannot go on; the message names the resource and AWS's reason."""


@dataclass(frozen=True)
class AwsClients:
    s3: Any
    glue: Any
    iam: Any
    sts: Any

    @classmethod
    def create(cls, session: AwsSession) -> AwsClients:
        return cls(*(session.client(service) for service in ("s3", "glue", "iam", "sts")))


@dataclass(frozen=True)
class Action:
    """One step of a plan: what changes (create/update/unchanged), on which resource, and why."""

    change: str
    resource: str
    reason: str
    run: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.change:<9} {self.resource}: {self.reason}"


def _caller(clients: AwsClients) -> tuple[str, str]:
    """The account and partition (aws, aws-cn, ...) of the credentials in use."""
    identity = _read(clients.sts.get_caller_identity, "reading the caller's identity", set())
    return identity["Account"], identity["Arn"].split(":")[1]


def plan(config: ProvisionConfig, clients: AwsClients) -> list[Action]:
    """Compare every resource with its desired state; nothing is changed."""
    return _Planner(config, clients, *_caller(clients)).actions()


def task_policy(config: ProvisionConfig, clients: AwsClients) -> dict[str, Any]:
    """`run_task_policy` in the caller's account: what `provision --print-task-policy` prints."""
    return run_task_policy(config, *_caller(clients))


def apply(actions: list[Action], log: Log) -> list[Action]:
    """Carry out a plan in order; returns the actions that changed something."""
    done = []
    for action in actions:
        if action.run is None:
            continue
        try:
            action.run()
        except ClientError as error:
            raise ProvisionError(f"could not {action.change} {action.resource}: {describe_error(error)}") from error
        log.info("%sd %s: %s", action.change, action.resource, action.reason)
        done.append(action)
    if not done:
        log.info("nothing to change: every resource is as configured")
    return done


def format_plan(actions: list[Action]) -> str:
    """The plan as a dry run prints it."""
    counts = {change: sum(action.change == change for action in actions) for change in (CREATE, UPDATE, UNCHANGED)}
    if counts[CREATE] + counts[UPDATE] == 0:
        summary = "Nothing to change: every resource is as configured."
    else:
        summary = f"{counts[CREATE]} to create, {counts[UPDATE]} to update, {counts[UNCHANGED]} unchanged."
    return "\n".join([*map(str, actions), summary])


def _read(call: Callable[..., Any], what: str, absent: set[str], **params: Any) -> Any:
    """The resource as AWS describes it, or None when AWS answers with one of the `absent` error codes."""
    try:
        return call(**params)
    except ClientError as error:
        if error_code(error) in absent:
            return None
        raise ProvisionError(f"{what} failed: {describe_error(error)}") from error


class _Planner:
    def __init__(self, config: ProvisionConfig, clients: AwsClients, account_id: str, partition: str):
        self.config = config
        self.clients = clients
        self.account_id = account_id
        self.partition = partition

    def actions(self) -> list[Action]:
        actions = [action for bucket in self.config.buckets for action in self._bucket(bucket)]
        actions.append(self._database())
        role_actions, role_arn = self._role(
            self.config.role_name,
            crawler_role_policy(self.config, self.account_id, self.partition),
            "boston_lake Glue crawler: only the lake's buckets, database and logs",
        )
        actions += [*role_actions, self._crawler(role_arn)]
        job_role_actions, job_role_arn = self._role(
            self.config.silver_role_name,
            silver_job_role_policy(self.config, self.account_id, self.partition),
            "boston_lake silver Glue job: read bronze and its script, write silver and _pipes, its logs",
        )
        script = script_bytes()
        return [
            *actions,
            self._pipes_lifecycle(),
            self._script(script),
            *job_role_actions,
            self._silver_job(job_role_arn, script_key(script)),
        ]

    def _bucket(self, bucket: str) -> list[Action]:
        s3, config, where = self.clients.s3, self.config, f"s3://{bucket}"
        default = {"SSEAlgorithm": config.sse, **({"KMSMasterKeyID": config.kms_key_id} if config.kms_key_id else {})}
        rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": default}
        if config.sse == "aws:kms":
            rule["BucketKeyEnabled"] = True  # one data key per bucket, not one KMS call per object

        def put_encryption() -> None:
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})

        def put_public_access_block() -> None:
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)

        if _read(s3.head_bucket, f"looking up {where}", {"404", "NoSuchBucket"}, Bucket=bucket) is None:
            location = {"CreateBucketConfiguration": {"LocationConstraint": config.region}}
            return [
                Action(
                    CREATE,
                    where,
                    f"does not exist; create it in {config.region}",
                    lambda: s3.create_bucket(Bucket=bucket, **({} if config.region == "us-east-1" else location)),
                ),
                Action(CREATE, f"{where} default encryption", f"new bucket: {config.encryption}", put_encryption),
                Action(CREATE, f"{where} public access block", "new bucket: block all", put_public_access_block),
            ]

        actions = [Action(UNCHANGED, where, "exists")]
        current = _read(
            s3.get_bucket_encryption,
            f"reading the encryption of {where}",
            {"ServerSideEncryptionConfigurationNotFoundError"},
            Bucket=bucket,
        )
        rules = current["ServerSideEncryptionConfiguration"]["Rules"] if current else []
        have = _encryption_view(rules[0]) if rules else "not configured"
        if have == _encryption_view(rule):
            actions.append(Action(UNCHANGED, f"{where} default encryption", f"{config.encryption} by default"))
        else:
            reason = f"is {have}; want {config.encryption}"
            actions.append(Action(UPDATE, f"{where} default encryption", reason, put_encryption))

        current = _read(
            s3.get_public_access_block,
            f"reading the public access block of {where}",
            {"NoSuchPublicAccessBlockConfiguration"},
            Bucket=bucket,
        )
        flags = current["PublicAccessBlockConfiguration"] if current else {}
        off = [flag for flag in PUBLIC_ACCESS_BLOCK if not flags.get(flag)]
        if off:
            reason = f"{', '.join(off)} off; block all"
            actions.append(Action(UPDATE, f"{where} public access block", reason, put_public_access_block))
        else:
            actions.append(Action(UNCHANGED, f"{where} public access block", "all public access blocked"))
        return actions

    def _database(self) -> Action:
        glue, name = self.clients.glue, self.config.database
        resource = f"glue database {name}"
        if _read(glue.get_database, f"looking up {resource}", {"EntityNotFoundException"}, Name=name):
            return Action(UNCHANGED, resource, "exists")
        database = {"Name": name, "Description": "Boston 311 service requests (boston_lake)"}
        return Action(CREATE, resource, "does not exist", lambda: glue.create_database(DatabaseInput=database))

    def _role(self, name: str, policy: dict[str, Any], description: str) -> tuple[list[Action], str]:
        iam = self.clients.iam
        role, trust = f"iam role {name}", glue_trust_policy()
        inline = f"{role} inline policy {INLINE_POLICY_NAME}"

        def put_policy() -> None:
            iam.put_role_policy(RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(policy))

        def create_role() -> None:
            iam.create_role(
                RoleName=name,
                Path=self.config.role_path,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=description,
            )

        def put_trust() -> None:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))

        existing = _read(iam.get_role, f"looking up {role}", {"NoSuchEntity"}, RoleName=name)
        if existing is None:
            arn = f"arn:{self.partition}:iam::{self.account_id}:role{self.config.role_path}{name}"
            return [
                Action(CREATE, role, "does not exist; trusted by glue.amazonaws.com only", create_role),
                Action(CREATE, inline, "least privilege for the lake", put_policy),
            ], arn

        if existing["Role"].get("Path", "/") != self.config.role_path:
            raise ProvisionError(
                f"{role} exists with path {existing['Role'].get('Path')!r}, not {self.config.role_path!r} as "
                "BOSTON_LAKE_GLUE_ROLE_ARN says (both Glue roles take its path); IAM cannot move a role: fix the "
                "ARN or delete the role"
            )
        actions = [Action(UNCHANGED, role, "exists")]
        if _normalized(existing["Role"]["AssumeRolePolicyDocument"]) == _normalized(trust):
            actions.append(Action(UNCHANGED, f"{role} trust policy", "trusted by glue.amazonaws.com only"))
        else:
            reason = "differs from: trusted by glue.amazonaws.com only"
            actions.append(Action(UPDATE, f"{role} trust policy", reason, put_trust))
        current = _read(
            iam.get_role_policy, f"reading {inline}", {"NoSuchEntity"}, RoleName=name, PolicyName=INLINE_POLICY_NAME
        )
        if current is None:
            actions.append(Action(CREATE, inline, "missing; least privilege for the lake", put_policy))
        elif _normalized(current["PolicyDocument"]) != _normalized(policy):
            actions.append(Action(UPDATE, inline, "differs from the least-privilege policy", put_policy))
        else:
            actions.append(Action(UNCHANGED, inline, "least privilege for the lake"))
        return actions, existing["Role"]["Arn"]

    def _crawler(self, role_arn: str) -> Action:
        glue, name = self.clients.glue, self.config.crawler_name
        resource = f"glue crawler {name}"
        desired = crawler_definition(self.config, role_arn)
        found = _read(glue.get_crawler, f"looking up {resource}", {"EntityNotFoundException"}, Name=name)
        if found is None:
            reason = f"does not exist; crawls {len(TABLES)} bronze tables"
            return Action(CREATE, resource, reason, lambda: glue.create_crawler(**desired))
        drift = _crawler_drift(found["Crawler"], desired, self.config.role_name)
        if not drift:
            return Action(UNCHANGED, resource, "targets, policies and configuration as configured")
        # UpdateCrawler fails with CrawlerRunningException during a crawl; apply says so, and a rerun finishes.
        return Action(UPDATE, resource, "; ".join(drift), lambda: glue.update_crawler(**desired))

    def _pipes_lifecycle(self) -> Action:
        s3, bucket = self.clients.s3, self.config.lake_bucket
        resource = f"s3://{bucket} lifecycle rule {PIPES_LIFECYCLE_RULE_ID}"
        desired = pipes_lifecycle_rule()
        current = _read(
            s3.get_bucket_lifecycle_configuration,
            f"reading the lifecycle rules of s3://{bucket}",
            {"NoSuchLifecycleConfiguration", "NoSuchBucket", "404"},
            Bucket=bucket,
        )
        rules = current["Rules"] if current else []
        others = [rule for rule in rules if rule.get("ID") != PIPES_LIFECYCLE_RULE_ID]
        ours = [rule for rule in rules if rule.get("ID") == PIPES_LIFECYCLE_RULE_ID]

        def put_rules() -> None:  # the bucket's other rules are kept as they are
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [*others, desired]})

        want = f"expire {PIPES_PREFIX} after {PIPES_EXPIRATION_DAYS} day"
        if not ours:
            return Action(CREATE, resource, f"missing; {want}", put_rules)
        if _lifecycle_view(ours[0]) != _lifecycle_view(desired):
            return Action(UPDATE, resource, f"is {_lifecycle_view(ours[0])}; {want}", put_rules)
        return Action(UNCHANGED, resource, want)

    def _script(self, script: bytes) -> Action:
        s3, bucket, key = self.clients.s3, self.config.code_bucket, script_key(script)
        resource = f"s3://{bucket}/{key}"
        found = _read(
            s3.head_object, f"looking up {resource}", {"404", "NoSuchKey", "NoSuchBucket"}, Bucket=bucket, Key=key
        )
        if found is not None:  # named by its content: the same key is the same script
            return Action(UNCHANGED, resource, "the silver job script of this version")

        def upload() -> None:
            s3.put_object(Bucket=bucket, Key=key, Body=script, **self.config.encryption.object_arguments())

        return Action(CREATE, resource, "the silver job script of this version is not uploaded", upload)

    def _silver_job(self, role_arn: str, key: str) -> Action:
        glue, name = self.clients.glue, self.config.silver_job_name
        resource = f"glue job {name}"
        desired = silver_job_definition(self.config, role_arn, key, version("dagster-pipes"))
        found = _read(glue.get_job, f"looking up {resource}", {"EntityNotFoundException"}, JobName=name)
        if found is None:
            reason = f"does not exist; Glue {desired['GlueVersion']} Spark job, {desired['NumberOfWorkers']} workers"
            return Action(CREATE, resource, reason, lambda: glue.create_job(**desired))
        drift = _job_drift(found["Job"], desired, self.config.silver_role_name)
        if not drift:
            return Action(UNCHANGED, resource, "script, role, Glue version, workers and limits as configured")
        update = {key: value for key, value in desired.items() if key != "Name"}
        return Action(UPDATE, resource, "; ".join(drift), lambda: glue.update_job(JobName=name, JobUpdate=update))


def _lifecycle_view(rule: dict[str, Any]) -> tuple[Any, ...]:
    prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix"))
    return prefix, rule.get("Status"), rule.get("Expiration")


def _job_drift(current: dict[str, Any], desired: dict[str, Any], role_name: str) -> list[str]:
    drift = []
    if current.get("Role") not in (desired["Role"], role_name):
        drift.append(f"role is {current.get('Role')!r}, want {desired['Role']!r}")
    command = current.get("Command", {})
    for field_name in ("Name", "ScriptLocation"):
        if command.get(field_name) != desired["Command"][field_name]:
            drift.append(
                f"command {field_name} is {command.get(field_name)!r}, want {desired['Command'][field_name]!r}"
            )
    arguments = current.get("DefaultArguments", {})
    for argument, value in desired["DefaultArguments"].items():
        if arguments.get(argument) != value:
            drift.append(f"{argument} is {arguments.get(argument)!r}, want {value!r}")
    for setting in ("GlueVersion", "WorkerType", "NumberOfWorkers", "Timeout", "MaxRetries"):
        if current.get(setting) != desired[setting]:
            drift.append(f"{setting} is {current.get(setting)!r}, want {desired[setting]!r}")
    concurrent = current.get("ExecutionProperty", {}).get("MaxConcurrentRuns")
    if concurrent != desired["ExecutionProperty"]["MaxConcurrentRuns"]:
        drift.append(f"MaxConcurrentRuns is {concurrent!r}, want {desired['ExecutionProperty']['MaxConcurrentRuns']}")
    return drift


def _encryption_view(rule: dict[str, Any]) -> str:
    """A default-encryption rule as what matters: algorithm, key, and (for KMS) whether bucket keys are on."""
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    algorithm = default.get("SSEAlgorithm", "")
    view = algorithm + (f" ({default['KMSMasterKeyID']})" if default.get("KMSMasterKeyID") else "")
    if algorithm == "aws:kms":
        view += " with bucket keys" if rule.get("BucketKeyEnabled") else " without bucket keys"
    return view


def _crawler_drift(current: dict[str, Any], desired: dict[str, Any], role_name: str) -> list[str]:
    drift = []
    if current.get("Role") not in (desired["Role"], role_name):
        drift.append(f"role is {current.get('Role')!r}, want {desired['Role']!r}")
    if current.get("DatabaseName") != desired["DatabaseName"]:
        drift.append(f"database is {current.get('DatabaseName')!r}, want {desired['DatabaseName']!r}")
    targets = current.get("Targets", {})
    have = sorted((target["Path"], sorted(target.get("Exclusions", []))) for target in targets.get("S3Targets", []))
    want = sorted((target["Path"], sorted(target["Exclusions"])) for target in desired["Targets"]["S3Targets"])
    if have != want:
        drift.append(f"S3 targets are {have}, want {want}")
    others = sorted(kind for kind, listed in targets.items() if kind != "S3Targets" and listed)
    if others:
        drift.append(f"has other targets ({', '.join(others)}), want S3 only")
    for setting in ("SchemaChangePolicy", "RecrawlPolicy"):
        if current.get(setting) != desired[setting]:
            drift.append(f"{setting} is {current.get(setting)}, want {desired[setting]}")
    if json.loads(current.get("Configuration") or "{}") != CRAWLER_CONFIGURATION:
        drift.append(f"configuration is {current.get('Configuration')}, want {desired['Configuration']}")
    return drift


def _normalized(document: dict[str, Any] | str) -> Any:
    """A policy document compared by meaning: IAM may hand a one-item list back as a plain string."""
    parsed = json.loads(document) if isinstance(document, str) else document

    def normalize(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: normalize(item) for key, item in value.items()}
        if isinstance(value, list):
            items = [normalize(item) for item in value]
            return sorted(items) if all(isinstance(item, str) for item in items) else items
        return value

    def listed(statement: dict[str, Any]) -> dict[str, Any]:
        return {
            key: [value] if isinstance(value, str) and key in _LIST_ELEMENTS else value
            for key, value in statement.items()
        }

    statements = parsed.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    return normalize({**parsed, "Statement": [listed(statement) for statement in statements]})
