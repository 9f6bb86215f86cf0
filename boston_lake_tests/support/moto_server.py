"""A real moto server on 127.0.0.1 standing in for S3, Glue, Athena, IAM and STS.

boto3, pyarrow's S3 filesystem and subprocesses all reach it over HTTP, which in-process `mock_aws` cannot
offer (pyarrow's C++ S3 client is not intercepted). One server serves the session; `aws_env` resets its
state and aims boto3 at it for each test. moto's own control API (`/moto-api/...`) drives what moto has no
AWS call for: finishing crawls (state-manager transitions) and canned Athena results.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from moto.athena.models import athena_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.glue.models import glue_backends
from moto.server import ThreadedMotoServer

from boston_lake.lake.aws.session import AwsSession

REGION = "us-east-1"


@dataclass
class MotoServer:
    url: str
    _transitions: set[str] = field(default_factory=set)

    def _post(self, path: str, payload: dict[str, Any] | None = None) -> None:
        response = requests.post(f"{self.url}/moto-api/{path}", json=payload, timeout=30)
        response.raise_for_status()

    def reset(self) -> None:
        """Forget every bucket, table, crawler and query, and every transition a test set."""
        self._post("reset")
        for model_name in sorted(self._transitions):
            self._post("state-manager/unset-transition", {"model_name": model_name})
        self._transitions.clear()

    def set_transition(self, model_name: str, transition: dict[str, Any]) -> None:
        """How moto advances a model's state, e.g. ("glue::crawl", {"progression": "manual", "times": 2}):
        a crawl then finishes on the second `list_crawls` call that sees it."""
        self._post("state-manager/set-transition", {"model_name": model_name, "transition": transition})
        self._transitions.add(model_name)

    def queue_athena_results(self, *results: dict[str, Any]) -> None:
        """Queue ResultSets ({"rows": [...], "column_info": [...]}); each query execution takes the next."""
        payload = {"account_id": DEFAULT_ACCOUNT_ID, "region": REGION, "results": list(results)}
        self._post("static/athena/query-results", payload)

    # moto has no API to make a crawl or a query fail. The server runs in this process, so these reach into
    # its backend state, as the portal fixture injects faults into its server: boto3 still talks HTTP.

    def fail_latest_crawl(self, crawler_name: str, error_message: str) -> None:
        """Make the crawler's latest crawl end FAILED with `error_message`, as a real failed crawl reports."""
        crawl = glue_backends[DEFAULT_ACCOUNT_ID][REGION].crawlers[crawler_name].crawls[-1]
        crawl.status = "FAILED"
        as_dict = type(crawl).as_dict
        crawl.as_dict = lambda: {**as_dict(crawl), "ErrorMessage": error_message}  # type: ignore[method-assign]

    def fail_query(self, query_execution_id: str) -> None:
        athena_backends[DEFAULT_ACCOUNT_ID][REGION].executions[query_execution_id].status = "FAILED"


@dataclass(frozen=True)
class LakeBuckets:
    raw: str
    lake: str
    code: str


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request drowns test output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MotoServer]:
    """A clean moto, and an environment in which boto3's default chain finds only moto and fake keys."""
    moto_server.reset()
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    yield moto_server
    moto_server.reset()


@pytest.fixture
def aws_client(aws_env: MotoServer) -> Callable[[str], Any]:
    """aws_client("s3") -> the test's boto3 client of moto for that service, built the way the product builds
    its clients; one session per test, because loading service models anew costs a tenth of a second a client."""
    return AwsSession(REGION, {"": aws_env.url}).client


@pytest.fixture
def aws_buckets(aws_client: Callable[[str], Any]) -> LakeBuckets:
    """Empty raw, lake and code buckets with unique names."""
    suffix = uuid.uuid4().hex[:12]
    buckets = LakeBuckets(raw=f"raw-{suffix}", lake=f"lake-{suffix}", code=f"code-{suffix}")
    s3 = aws_client("s3")
    for bucket in (buckets.raw, buckets.lake, buckets.code):
        s3.create_bucket(Bucket=bucket)
    return buckets
