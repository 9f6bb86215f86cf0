"""The environment, read in one place and validated before anything runs.

Every variable is declared once below (name, parser, default, help); parsing, the error that names a bad
variable, the configuration tables of docs/configuration.md and the fields of the UI's settings resource all
come from those declarations. Every other module receives a `Settings`; nothing else reads `os.environ`, so a
bad value fails at load time with the variable's name instead of deep inside a run. An unset and a blank
variable mean the same: use the default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from boston_lake.lake.errors import LakeError
from boston_lake.lake.tables import DATABASE, SERVICE_REQUESTS, TABLES

TARGETS = ("local", "aws")
CRAWLER_MODES = ("direct", "glue")
SSE_ALGORITHMS = ("AES256", "aws:kms")
NEW_SYSTEM_SOURCES = ("datastore", "csv")
RUN_LAUNCHERS = ("default", "ecs")
DEFAULT_PORTAL_URL = "https://data.boston.gov"
DEFAULT_HOME = ".boston_lake"
DEFAULT_ROLE_NAME = "boston-lake-glue-crawler"
DEFAULT_CRAWLER_NAME = "boston311-bronze"
# The silver Glue job and its own role (`provision` creates both).
SILVER_JOB_NAME = "boston-lake-silver"
SILVER_JOB_ROLE_NAME = "boston-lake-glue-silver-job"
# DuckDB's memory limit for each bronze, silver and gold build, measured in benchmarks/ (a 2 GB CSV converts
# and a year of 300,000 cases builds silver in under 300 MiB of RSS; gold needs under 64MB of it).
DUCKDB_MEMORY_LIMIT = "192MB"
# The largest share of its published rows or case ids a year may lose in one build; beyond it the build is
# refused and the published year kept, unless a run accepts the shrink (lake/zones/publish.py).
MAX_SHRINK = "2%"
SNAPSHOT_RETENTION_DAYS = "90"
# The tables that hold cases, each with a shrink limit of its own (BOSTON_LAKE_MAX_SHRINK_<TABLE>).
SHRINK_TABLES = (*(table.name for table in TABLES), SERVICE_REQUESTS)
# The AWS services the lake calls; each may have its own endpoint variable, as boto3 names them.
AWS_SERVICES = ("s3", "glue", "athena", "iam", "sts")

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_DATABASE = re.compile(r"[a-z0-9_]{1,255}")
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")
_ROLE_PATH = re.compile(r"/([\x21-\x7e]{0,510}/)?")
_CRAWLER_NAME = re.compile(r"[\w.-]{1,255}")
_ROLE_ARN = re.compile(r"arn:(?P<partition>[\w-]+):iam::(?P<account>\d{12}):role(?P<path>/(?:.*/)?)(?P<name>[^/]+)")
_MEMORY_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]i?B)", re.IGNORECASE)
_MEMORY_UNITS = {prefix: (1000**power, 1024**power) for power, prefix in enumerate("KMGT", start=1)}
_SHARE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*%")
_KMS_KEY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}")


ATHENA_RESULTS_PREFIX = "_athena_results/"  # in the lake bucket, unless BOSTON_LAKE_ATHENA_OUTPUT says otherwise


class SettingsError(LakeError, ValueError):
    """A configuration variable is missing or malformed; the message names it."""


# -- parsers: text -> value, or ValueError saying what the text should have been ------------------------------


def _one_of(choices: tuple[str, ...], meaning: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"is not {meaning}; use one of {', '.join(choices)}")
        return text

    return parse


def _matching(pattern: re.Pattern[str], rule: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not pattern.fullmatch(text) or ".." in text:
            raise ValueError(f"is not {rule}")
        return text

    return parse


def http_url(text: str) -> str:
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("is not an http(s) URL such as https://data.boston.gov")
    try:
        port = parsed.port  # urllib raises for a port out of 0..65535 or not a number
    except ValueError as error:
        raise ValueError(
            f"has a bad port ({error}); a URL such as https://data.boston.gov or http://host:8080"
        ) from error
    if parsed.netloc.endswith(":") or port == 0:
        raise ValueError("has an empty or zero port; give one in 1..65535 or leave the port out")
    return text.rstrip("/")


def s3_location(text: str) -> str:
    if not text.startswith("s3://") or len(text) <= len("s3://"):
        raise ValueError("is not an s3:// location")
    return text


def lake_home(text: str) -> Path:
    """A folder that exists (it may be read-only: reading a copy of a lake needs no write), or one that can be
    created: its nearest existing parent is a folder this process may write."""
    path = Path(text).expanduser().resolve()
    if path.exists():
        if not path.is_dir():
            raise ValueError("is not a folder")
        return path
    parent = next(folder for folder in path.parents if folder.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"does not exist and cannot be created: {parent} is not a folder this process may write")
    return path


def memory_size(text: str) -> str:
    """A size DuckDB reads as a memory limit (`192MB`, `1.5GB`, `512MiB`), kept as written; at least 1MB, below
    which DuckDB cannot even open a connection."""
    found = _MEMORY_SIZE.fullmatch(text)
    if not found:
        raise ValueError("is not a memory size such as 192MB or 1GB (units KB, MB, GB, TB or KiB, MiB, GiB, TiB)")
    decimal, binary = _MEMORY_UNITS[found["unit"][0].upper()]
    if float(found["number"]) * (binary if found["unit"][1].lower() == "i" else decimal) < 1000**2:
        raise ValueError("is less than 1MB, too little for DuckDB to run")
    return text


def share(text: str) -> float:
    """A share written as a percentage (`2%`, `0.5%`, `0%` ... `100%`), as a fraction (0.02)."""
    found = _SHARE.fullmatch(text)
    if not found:
        raise ValueError("is not a percentage such as 2% or 0.5%")
    value = float(found["number"]) / 100
    if value > 1:
        raise ValueError("is more than 100%")
    return value


def days(text: str) -> int:
    """A whole number of days, at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise ValueError("is not a whole number of days, at least 1")
    return int(text)


def max_shrink_variable(table: str) -> str:
    """The variable that sets the shrink limit of `table` alone (e.g. BOSTON_LAKE_MAX_SHRINK_LEGACY_REQUESTS)."""
    return f"BOSTON_LAKE_MAX_SHRINK_{table.upper()}"


def _text(text: str) -> str:
    return text


bucket_name = _matching(_BUCKET, "an S3 bucket name: 3-63 of a-z 0-9 . -")
database_name = _matching(_DATABASE, "a Glue database name: a-z 0-9 _")
role_name = _matching(_ROLE_NAME, "an IAM role name: 1-64 of letters, digits, + = , . @ _ -")
role_path = _matching(_ROLE_PATH, "an IAM role path: / or /<segments>/")
crawler_name = _matching(_CRAWLER_NAME, "a crawler name: letters, digits, . _ -")
glue_job_name = _matching(_CRAWLER_NAME, "a Glue job name: letters, digits, . _ -")
sse_algorithm = _one_of(SSE_ALGORITHMS, "a server-side encryption S3 supports")


def kms_key_id(text: str) -> str:
    if not (text.startswith("arn:") or _KMS_KEY_ID.fullmatch(text)):
        raise ValueError("is not a KMS key id or ARN; an IAM policy cannot grant on an alias")
    return text


@dataclass(frozen=True)
class RoleArn:
    """An IAM role ARN kept whole: its path (`/service-role/`) is part of the role's identity."""

    arn: str
    name: str
    path: str

    @classmethod
    def parse(cls, text: str) -> RoleArn:
        found = _ROLE_ARN.fullmatch(text)
        if not found:
            raise ValueError("is not an IAM role ARN (arn:aws:iam::<account>:role/[<path>/]<name>)")
        role_name(found["name"])
        role_path(found["path"])
        return cls(arn=text, name=found["name"], path=found["path"])


# -- the declarations ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """One environment variable: how its text is parsed, what an unset one means, and what it is for."""

    name: str
    parse: Callable[[str], Any]
    help: str
    default: str | None = None  # the text an unset variable stands for; None: no value (or `default_help`)
    default_help: str = ""  # the docs' wording of a default that is not a plain value
    aws: bool = False  # read only for BOSTON_LAKE_TARGET=aws

    def read(self, env: Mapping[str, str]) -> Any:
        """The parsed value, the parsed default, or None; a bad text raises SettingsError naming the variable."""
        text = env.get(self.name, "").strip() or self.default
        if text is None:
            return None
        try:
            return self.parse(text)
        except ValueError as error:
            raise SettingsError(f"{self.name}={text!r} {error}") from error

    def readme_default(self) -> str:
        return self.default_help or (f"`{self.default}`" if self.default is not None else "none")


VARIABLES = (
    Variable(
        "BOSTON_LAKE_TARGET",
        _one_of(TARGETS, "a known target"),
        "`local` (embedded: folders, SQLite catalog, DuckDB) or `aws`",
        default="local",
    ),
    Variable("BOSTON_LAKE_HOME", lake_home, "root of the embedded lake (zones and catalog)", default=DEFAULT_HOME),
    Variable("BOSTON_LAKE_PORTAL_URL", http_url, "CKAN base URL", default=DEFAULT_PORTAL_URL),
    Variable(
        "BOSTON_LAKE_NEW_SYSTEM_SOURCE",
        _one_of(NEW_SYSTEM_SOURCES, "a NEW SYSTEM source"),
        "where NEW SYSTEM records come from: `datastore` (JSON through CKAN's DataStore API) or `csv` "
        "(the resource's CSV file)",
        default_help="`datastore` when the portal marks the resource `datastore_active`, else `csv`",
    ),
    Variable(
        "BOSTON_LAKE_RUN_LAUNCHER",
        _one_of(RUN_LAUNCHERS, "a run launcher the lake sizes runs for"),
        "the Dagster instance's run launcher, as the code server must know it: `ecs` (deploy/ecs/dagster.yaml) "
        "gives ingest runs their Fargate size with `ecs/cpu` and `ecs/memory` tags; with `default` runs carry "
        "no such tags",
        default="default",
    ),
    Variable(
        "BOSTON_LAKE_DUCKDB_MEMORY_LIMIT",
        memory_size,
        "DuckDB's memory limit for each bronze, silver and gold build in this process (beyond it DuckDB spills "
        "to disk, or fails saying so), e.g. `1GB`",
        default=DUCKDB_MEMORY_LIMIT,
    ),
    Variable(
        "BOSTON_LAKE_MAX_SHRINK",
        share,
        "the largest share of its published rows or of its case ids a bronze or silver year may lose in one "
        "build; a build that loses more is refused and the published year stays, unless the run accepts the "
        "shrink with a reason (`accept_shrink`, see docs/operations.md)",
        default=MAX_SHRINK,
    ),
    *(
        Variable(
            max_shrink_variable(table),
            share,
            f"`BOSTON_LAKE_MAX_SHRINK` for the years of `{table}` alone",
            default_help="`BOSTON_LAKE_MAX_SHRINK`",
        )
        for table in SHRINK_TABLES
    ),
    Variable(
        "BOSTON_LAKE_SNAPSHOT_RETENTION_DAYS",
        days,
        "how long the snapshots of the silver and gold Iceberg tables stay readable (`query --as-of`, `rollback`); "
        "the daily housekeeping expires older ones, except the last of each month and the current one",
        default=SNAPSHOT_RETENTION_DAYS,
    ),
    Variable(
        "BOSTON_LAKE_RAW_BUCKET",
        bucket_name,
        "raw zone (the downloads as they came)",
        default_help="required",
        aws=True,
    ),
    Variable(
        "BOSTON_LAKE_LAKE_BUCKET",
        bucket_name,
        "`bronze/` and `silver/` prefixes; crawl leases under `_locks/`",
        default_help="required",
        aws=True,
    ),
    Variable("BOSTON_LAKE_CODE_BUCKET", bucket_name, "Glue job scripts", default_help="required", aws=True),
    Variable(
        "BOSTON_LAKE_AWS_REGION",
        _text,
        "region of the buckets, the catalog and Athena; one of the three region variables is required",
        default_help="`AWS_REGION`, else `AWS_DEFAULT_REGION`",
        aws=True,
    ),
    Variable("AWS_REGION", _text, "boto3's region variable, used when `BOSTON_LAKE_AWS_REGION` is unset", aws=True),
    Variable("AWS_DEFAULT_REGION", _text, "boto3's older region variable, used when both others are unset", aws=True),
    Variable("BOSTON_LAKE_GLUE_DATABASE", database_name, "Glue database", default=DATABASE, aws=True),
    Variable(
        "BOSTON_LAKE_CRAWLER",
        _one_of(CRAWLER_MODES, "a crawler mode"),
        "`direct` (our crawler writing through the Glue API) or `glue` (the managed Glue crawler)",
        default="direct",
        aws=True,
    ),
    Variable(
        "BOSTON_LAKE_GLUE_CRAWLER_NAME",
        crawler_name,
        "the managed crawler `provision` creates and `glue` mode starts",
        default=DEFAULT_CRAWLER_NAME,
        aws=True,
    ),
    Variable(
        "BOSTON_LAKE_GLUE_ROLE_ARN",
        RoleArn.parse,
        "the crawler's IAM role, path included; `provision` creates or updates the role of that name and path",
        default_help=f"role `{DEFAULT_ROLE_NAME}` of the account",
        aws=True,
    ),
    Variable(
        "BOSTON_LAKE_SILVER_JOB_NAME",
        glue_job_name,
        "the silver Glue job `provision` creates and silver runs start",
        default=SILVER_JOB_NAME,
        aws=True,
    ),
    Variable(
        "BOSTON_LAKE_SILVER_JOB_ROLE_NAME",
        role_name,
        "the silver Glue job's own IAM role, which `provision` creates or updates",
        default=SILVER_JOB_ROLE_NAME,
        aws=True,
    ),
    Variable("BOSTON_LAKE_ATHENA_WORKGROUP", _text, "Athena workgroup", default="primary", aws=True),
    Variable(
        "BOSTON_LAKE_ATHENA_OUTPUT",
        s3_location,
        "Athena result location",
        default_help="`s3://<lake bucket>/_athena_results/`",
        aws=True,
    ),
    Variable(
        "BOSTON_LAKE_SSE",
        sse_algorithm,
        "server-side encryption of every object: `AES256` or `aws:kms`",
        default="AES256",
        aws=True,
    ),
    Variable("BOSTON_LAKE_KMS_KEY_ID", kms_key_id, "the KMS key (id or ARN) of `aws:kms` encryption", aws=True),
    Variable(
        "AWS_ENDPOINT_URL",
        http_url,
        "boto3's endpoint variable for every service: any S3/Glue-compatible endpoint",
        aws=True,
    ),
    *(
        Variable(
            f"AWS_ENDPOINT_URL_{service.upper()}",
            http_url,
            f"boto3's endpoint variable for {service}; wins over `AWS_ENDPOINT_URL`",
            aws=True,
        )
        for service in AWS_SERVICES
    ),
)
_BY_NAME = {variable.name: variable for variable in VARIABLES}


def readme_table(aws: bool) -> str:
    """The configuration table of docs/configuration.md of the general (aws=False) or the AWS target's variables."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [
        f"| `{variable.name}` | {variable.readme_default()} | {variable.help} |"
        for variable in VARIABLES
        if variable.aws == aws
    ]
    return "\n".join(rows)


def given_variables(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The declared variables that `env` sets (a blank one is unset), with their text, in declaration order."""
    return tuple(
        (variable.name, env[variable.name].strip()) for variable in VARIABLES if env.get(variable.name, "").strip()
    )


def _read(env: Mapping[str, str], name: str) -> Any:
    return _BY_NAME[name].read(env)


# -- the settings ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsSettings:
    """The `aws` target. Credentials are never settings: boto3's default chain finds them."""

    region: str
    raw_bucket: str
    lake_bucket: str
    code_bucket: str
    database: str
    crawler_mode: str
    crawler_name: str
    role: RoleArn | None  # None: the role DEFAULT_ROLE_NAME of the caller's account
    athena_workgroup: str
    athena_output: str
    sse: str
    kms_key_id: str | None
    endpoints: tuple[tuple[str, str], ...] = ()  # (service, URL); service "" is every service
    silver_job_name: str = SILVER_JOB_NAME
    silver_role_name: str = SILVER_JOB_ROLE_NAME

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AwsSettings:
        buckets = ("BOSTON_LAKE_RAW_BUCKET", "BOSTON_LAKE_LAKE_BUCKET", "BOSTON_LAKE_CODE_BUCKET")
        missing = [name for name in buckets if _read(env, name) is None]
        if missing:
            raise SettingsError(f"BOSTON_LAKE_TARGET=aws needs {', '.join(missing)} (the raw, lake and code buckets)")
        raw_bucket, lake_bucket, code_bucket = (_read(env, name) for name in buckets)
        if len({raw_bucket, lake_bucket, code_bucket}) < len(buckets):
            raise SettingsError(f"{', '.join(buckets)} must name three different buckets")
        region = next(
            (
                found
                for name in ("BOSTON_LAKE_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
                if (found := _read(env, name))
            ),
            None,
        )
        if not region:
            raise SettingsError("BOSTON_LAKE_TARGET=aws needs a region: set AWS_REGION (or AWS_DEFAULT_REGION)")
        sse, kms_key = _read(env, "BOSTON_LAKE_SSE"), _read(env, "BOSTON_LAKE_KMS_KEY_ID")
        if kms_key and sse != "aws:kms":
            raise SettingsError(f"BOSTON_LAKE_KMS_KEY_ID={kms_key!r} needs BOSTON_LAKE_SSE=aws:kms, not {sse!r}")
        endpoints = [("", _read(env, "AWS_ENDPOINT_URL"))]
        endpoints += [(service, _read(env, f"AWS_ENDPOINT_URL_{service.upper()}")) for service in AWS_SERVICES]
        return cls(
            region=region,
            raw_bucket=raw_bucket,
            lake_bucket=lake_bucket,
            code_bucket=code_bucket,
            database=_read(env, "BOSTON_LAKE_GLUE_DATABASE"),
            crawler_mode=_read(env, "BOSTON_LAKE_CRAWLER"),
            crawler_name=_read(env, "BOSTON_LAKE_GLUE_CRAWLER_NAME"),
            role=_read(env, "BOSTON_LAKE_GLUE_ROLE_ARN"),
            athena_workgroup=_read(env, "BOSTON_LAKE_ATHENA_WORKGROUP"),
            athena_output=_read(env, "BOSTON_LAKE_ATHENA_OUTPUT") or f"s3://{lake_bucket}/{ATHENA_RESULTS_PREFIX}",
            sse=sse,
            kms_key_id=kms_key,
            endpoints=tuple((service, url) for service, url in endpoints if url),
            silver_job_name=_read(env, "BOSTON_LAKE_SILVER_JOB_NAME"),
            silver_role_name=_read(env, "BOSTON_LAKE_SILVER_JOB_ROLE_NAME"),
        )

    def endpoint(self, service: str) -> str | None:
        """The endpoint for `service`, as boto3 picks it: the service's own variable, else the general one."""
        found = dict(self.endpoints)
        return found.get(service) or found.get("")


@dataclass(frozen=True)
class Settings:
    """The settings of one process. Build them with `from_env` (from a mapping when not from the process's own
    environment): the Dagster `settings` resource shows the variables they were read from (`given`)."""

    target: str
    home: Path
    portal_url: str
    aws: AwsSettings | None = None
    new_system_source: str | None = None  # None: the DataStore whenever the portal marks the resource datastore_active
    run_launcher: str = "default"  # BOSTON_LAKE_RUN_LAUNCHER: `ecs` sizes ingest runs by tags
    duckdb_memory_limit: str = DUCKDB_MEMORY_LIMIT  # each bronze, silver and gold build's DuckDB memory limit
    default_max_shrink: float = share(MAX_SHRINK)  # BOSTON_LAKE_MAX_SHRINK
    max_shrink: tuple[tuple[str, float], ...] = ()  # (table, limit) of each table in SHRINK_TABLES
    snapshot_retention_days: int = int(SNAPSHOT_RETENTION_DAYS)  # BOSTON_LAKE_SNAPSHOT_RETENTION_DAYS
    # The text of every declared variable that was set when these settings were read: what the UI shows.
    given: tuple[tuple[str, str], ...] = ()

    def max_shrink_of(self, table: str) -> float:
        """The share of its published rows or case ids a year of `table` may lose in one build."""
        return dict(self.max_shrink).get(table, self.default_max_shrink)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        target = _read(env, "BOSTON_LAKE_TARGET")
        return cls(
            given=given_variables(env),
            target=target,
            home=_read(env, "BOSTON_LAKE_HOME"),
            portal_url=_read(env, "BOSTON_LAKE_PORTAL_URL"),
            new_system_source=_read(env, "BOSTON_LAKE_NEW_SYSTEM_SOURCE"),
            run_launcher=_read(env, "BOSTON_LAKE_RUN_LAUNCHER"),
            duckdb_memory_limit=_read(env, "BOSTON_LAKE_DUCKDB_MEMORY_LIMIT"),
            default_max_shrink=(default_shrink := _read(env, "BOSTON_LAKE_MAX_SHRINK")),
            max_shrink=tuple(
                (table, default_shrink if (own := _read(env, max_shrink_variable(table))) is None else own)
                for table in SHRINK_TABLES
            ),
            snapshot_retention_days=_read(env, "BOSTON_LAKE_SNAPSHOT_RETENTION_DAYS"),
            aws=AwsSettings.from_env(env) if target == "aws" else None,
        )


def use_dagster_home(path: Path) -> None:
    """Point Dagster at `path` for this process: Dagster reads its instance's home only from DAGSTER_HOME
    (the offline demo keeps its runs beside its lake)."""
    os.environ["DAGSTER_HOME"] = str(path)
