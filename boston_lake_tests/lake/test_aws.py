from __future__ import annotations

import boto3
import pytest

from boston_lake.lake.aws import Backoff, Poller, WaitTimedOut, boto3_client, drop_empty_endpoint_variables
from boston_lake_tests.support.moto_server import MotoServer


def test_blank_endpoint_variables_are_dropped_and_set_ones_kept():
    environ = {
        "AWS_ENDPOINT_URL": " ",
        "AWS_ENDPOINT_URL_S3": "",
        "AWS_ENDPOINT_URL_GLUE": "http://127.0.0.1:1",
        "AWS_REGION": "",
    }
    assert drop_empty_endpoint_variables(environ) == ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
    assert environ == {"AWS_ENDPOINT_URL_GLUE": "http://127.0.0.1:1", "AWS_REGION": ""}


def test_boto3_client_survives_blank_endpoints_that_break_botocore(aws_env: MotoServer, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", " ")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws_env.url)
    with pytest.raises(ValueError, match="Invalid endpoint"):
        boto3.session.Session().client("glue", region_name="us-east-1")
    with pytest.raises(ValueError, match="Invalid endpoint"):
        boto3.session.Session().client("s3", region_name="us-east-1", endpoint_url="")

    s3 = boto3_client("s3", "us-east-1", endpoint_url="")
    s3.create_bucket(Bucket="endpoint-check")
    assert [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]] == ["endpoint-check"]
    assert boto3_client("glue", "us-east-1").meta.endpoint_url == "https://glue.us-east-1.amazonaws.com"


def test_service_specific_endpoint_wins_over_the_general_one(aws_env: MotoServer, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws_env.url)
    assert boto3_client("s3").meta.endpoint_url == aws_env.url
    assert boto3_client("glue").meta.endpoint_url == "http://127.0.0.1:9"


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
