"""The environment, read in one place and validated before anything runs.

Every other module receives a `Settings`; nothing else reads `os.environ`, so a bad value fails at load
time with the variable's name instead of deep inside a run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

TARGETS = ("local", "aws")
CRAWLER_MODES = ("direct", "glue")
NEW_SYSTEM_SOURCES = ("datastore", "csv")
DEFAULT_PORTAL_URL = "https://data.boston.gov"
DEFAULT_HOME = ".boston_lake"
DEFAULT_ROLE_NAME = "boston-lake-glue-crawler"
DEFAULT_CRAWLER_NAME = "boston311-bronze"


class SettingsError(ValueError):
    """A configuration variable is missing or malformed; the message names it."""


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
    role_name: str
    athena_workgroup: str
    athena_output: str
    sse: str
    kms_key_id: str | None

    # Each field and the variable it comes from, so that a bad value's error names the variable.
    VARIABLES = {
        "region": "AWS_REGION",
        "raw_bucket": "BOSTON_LAKE_RAW_BUCKET",
        "lake_bucket": "BOSTON_LAKE_LAKE_BUCKET",
        "code_bucket": "BOSTON_LAKE_CODE_BUCKET",
        "database": "BOSTON_LAKE_GLUE_DATABASE",
        "crawler_name": "BOSTON_LAKE_GLUE_CRAWLER_NAME",
        "role_name": "BOSTON_LAKE_GLUE_ROLE_ARN",
        "sse": "BOSTON_LAKE_SSE",
        "kms_key_id": "BOSTON_LAKE_KMS_KEY_ID",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AwsSettings:
        missing = [
            name
            for name in ("BOSTON_LAKE_RAW_BUCKET", "BOSTON_LAKE_LAKE_BUCKET", "BOSTON_LAKE_CODE_BUCKET")
            if not _value(env, name)
        ]
        if missing:
            raise SettingsError(f"BOSTON_LAKE_TARGET=aws needs {', '.join(missing)} (the raw, lake and code buckets)")
        region = _value(env, "BOSTON_LAKE_AWS_REGION") or _value(env, "AWS_REGION") or _value(env, "AWS_DEFAULT_REGION")
        if not region:
            raise SettingsError("BOSTON_LAKE_TARGET=aws needs a region: set AWS_REGION (or AWS_DEFAULT_REGION)")
        crawler_mode = _value(env, "BOSTON_LAKE_CRAWLER") or "direct"
        if crawler_mode not in CRAWLER_MODES:
            raise SettingsError(
                f"BOSTON_LAKE_CRAWLER={crawler_mode!r} is not a crawler mode; use direct (our crawler writing "
                "through the Glue API) or glue (the managed Glue crawler)"
            )
        role_arn = _value(env, "BOSTON_LAKE_GLUE_ROLE_ARN")
        if role_arn and not role_arn.startswith("arn:"):
            raise SettingsError(
                f"BOSTON_LAKE_GLUE_ROLE_ARN={role_arn!r} is not an ARN (arn:aws:iam::<account>:role/<name>)"
            )
        lake_bucket = _value(env, "BOSTON_LAKE_LAKE_BUCKET")
        athena_output = _value(env, "BOSTON_LAKE_ATHENA_OUTPUT") or f"s3://{lake_bucket}/_athena_results/"
        if not athena_output.startswith("s3://"):
            raise SettingsError(f"BOSTON_LAKE_ATHENA_OUTPUT={athena_output!r} is not an s3:// location")
        settings = cls(
            region=region,
            raw_bucket=_value(env, "BOSTON_LAKE_RAW_BUCKET"),
            lake_bucket=lake_bucket,
            code_bucket=_value(env, "BOSTON_LAKE_CODE_BUCKET"),
            database=_value(env, "BOSTON_LAKE_GLUE_DATABASE") or "boston311",
            crawler_mode=crawler_mode,
            crawler_name=_value(env, "BOSTON_LAKE_GLUE_CRAWLER_NAME") or DEFAULT_CRAWLER_NAME,
            role_name=role_arn.rsplit("/", 1)[-1] if role_arn else DEFAULT_ROLE_NAME,
            athena_workgroup=_value(env, "BOSTON_LAKE_ATHENA_WORKGROUP") or "primary",
            athena_output=athena_output,
            sse=_value(env, "BOSTON_LAKE_SSE") or "AES256",
            kms_key_id=_value(env, "BOSTON_LAKE_KMS_KEY_ID") or None,
        )
        settings.provision_config()  # validates names, buckets and encryption
        return settings

    def provision_config(self):  # -> ProvisionConfig; imported here to keep settings light to load
        from boston_lake.lake.provision import ProvisionConfig

        try:
            return ProvisionConfig(
                region=self.region,
                raw_bucket=self.raw_bucket,
                lake_bucket=self.lake_bucket,
                code_bucket=self.code_bucket,
                database=self.database,
                role_name=self.role_name,
                crawler_name=self.crawler_name,
                sse=self.sse,
                kms_key_id=self.kms_key_id,
            )
        except ValueError as error:
            message = str(error)
            for field_name, variable in self.VARIABLES.items():
                message = message.replace(f"{field_name}=", f"{variable}=")
            raise SettingsError(message) from None


@dataclass(frozen=True)
class Settings:
    target: str
    home: Path
    portal_url: str
    aws: AwsSettings | None = None
    new_system_source: str | None = None  # None: the DataStore whenever the portal marks the resource datastore_active

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        target = _value(env, "BOSTON_LAKE_TARGET") or "local"
        if target not in TARGETS:
            raise SettingsError(f"BOSTON_LAKE_TARGET={target!r} is not a known target; use one of {', '.join(TARGETS)}")
        home = Path(_value(env, "BOSTON_LAKE_HOME") or DEFAULT_HOME).expanduser().resolve()
        portal_url = check_http_url(
            "BOSTON_LAKE_PORTAL_URL", _value(env, "BOSTON_LAKE_PORTAL_URL") or DEFAULT_PORTAL_URL
        )
        aws = AwsSettings.from_env(env) if target == "aws" else None
        new_system_source = _value(env, "BOSTON_LAKE_NEW_SYSTEM_SOURCE") or None
        if new_system_source not in (None, *NEW_SYSTEM_SOURCES):
            raise SettingsError(
                f"BOSTON_LAKE_NEW_SYSTEM_SOURCE={new_system_source!r} is not a source; use datastore (the records as "
                "JSON through CKAN's DataStore API) or csv (the resource's CSV file), or leave it empty for datastore "
                "whenever the portal serves the resource through the DataStore"
            )
        return cls(target=target, home=home, portal_url=portal_url, aws=aws, new_system_source=new_system_source)


def _value(env: Mapping[str, str], name: str) -> str:
    """An unset and an empty variable mean the same: use the default (an empty endpoint breaks botocore)."""
    return env.get(name, "").strip()


def check_http_url(variable: str, url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingsError(f"{variable}={url!r} is not an http(s) URL such as https://data.boston.gov")
    return url.rstrip("/")
