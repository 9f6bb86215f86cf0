from __future__ import annotations

import boto3
import pytest

from boston_lake.lake.aws.session import AwsSession, Backoff, Poller, WaitTimedOut
from boston_lake.lake.settings import Settings
from boston_lake_tests.support.moto_server import MotoServer


def aws_settings(**variables: str) -> Settings:
    buckets = {
        "BOSTON_LAKE_RAW_BUCKET": "raw-a",
        "BOSTON_LAKE_LAKE_BUCKET": "lake-a",
        "BOSTON_LAKE_CODE_BUCKET": "code-a",
    }
    return Settings.from_env({"BOSTON_LAKE_TARGET": "aws", "AWS_REGION": "us-east-1", **buckets, **variables})


def test_blank_endpoint_variables_that_break_botocore_mean_aws_itself(aws_env: MotoServer, monkeypatch):
    blank = {"AWS_ENDPOINT_URL": " ", "AWS_ENDPOINT_URL_S3": aws_env.url}
    for name, value in blank.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="Invalid endpoint"):
        boto3.session.Session().client("glue", region_name="us-east-1")

    settings = aws_settings(**blank)
    assert settings.aws and settings.aws.endpoints == (("s3", aws_env.url),)
    session = AwsSession.from_settings(settings.aws)
    session.client("s3").create_bucket(Bucket="endpoint-check")
    assert [bucket["Name"] for bucket in session.client("s3").list_buckets()["Buckets"]] == ["endpoint-check"]
    assert session.client("glue").meta.endpoint_url == "https://glue.us-east-1.amazonaws.com"


def test_service_specific_endpoint_wins_over_the_general_one(aws_env: MotoServer):
    settings = aws_settings(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ENDPOINT_URL_S3=aws_env.url)
    assert settings.aws
    session = AwsSession.from_settings(settings.aws)
    assert session.client("s3").meta.endpoint_url == aws_env.url
    assert session.client("glue").meta.endpoint_url == "http://127.0.0.1:9"
    assert session.client("s3") is session.client("s3")  # one client per service and session


def test_backoff_grows_to_its_ceiling():
    delays = Backoff(initial_seconds=1, factor=3, max_seconds=10).delays()
    assert [next(delays) for _ in range(5)] == [1, 3, 9, 10, 10]
    with pytest.raises(ValueError, match="factor"):
        Backoff(factor=0.5)


def test_poller_sleeps_within_the_deadline_then_gives_up_naming_what_it_waited_for():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    poller = Poller(10, Backoff(initial_seconds=2, factor=2, max_seconds=8), clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        poller.pause("the thing")
    assert slept == [2, 4, 4]  # the last sleep is cut to the time left
    with pytest.raises(WaitTimedOut, match=r"the thing after 10 s \(timeout 10 s\)"):
        poller.pause("the thing")
