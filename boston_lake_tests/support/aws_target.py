"""The whole product on the aws target, aimed at the moto server and the test portal."""

from pathlib import Path

import pytest
from dagster import Definitions

from boston_lake.definitions import build_definitions
from boston_lake.lake.settings import Settings


@pytest.fixture
def aws_environment(aws_env, aws_buckets, portal, tmp_path: Path) -> dict[str, str]:
    """The variables an operator sets for the aws target (endpoint and keys come from `aws_env`)."""
    return {
        "BOSTON_LAKE_TARGET": "aws",
        "BOSTON_LAKE_RAW_BUCKET": aws_buckets.raw,
        "BOSTON_LAKE_LAKE_BUCKET": aws_buckets.lake,
        "BOSTON_LAKE_CODE_BUCKET": aws_buckets.code,
        "BOSTON_LAKE_PORTAL_URL": portal.url,
        "BOSTON_LAKE_HOME": str(tmp_path / "unused_home"),
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": aws_env.url,
    }


@pytest.fixture
def aws_settings(aws_environment: dict[str, str]) -> Settings:
    return Settings.from_env(aws_environment)


@pytest.fixture
def aws_defs(aws_settings: Settings) -> Definitions:
    return build_definitions(aws_settings)
