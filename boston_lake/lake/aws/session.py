"""What every AWS-facing module of the lake shares: clients built the same way, errors read the same way,
and waits that back off and give up on one deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from boston_lake.lake.errors import LakeError
from boston_lake.lake.settings import AwsSettings


class AwsSession:
    """One boto3 session for every client of a target: region and endpoints as Settings read them, profile and
    credentials from boto3's default chain, each client built once.

    botocore reads AWS_ENDPOINT_URL* itself and takes a blank one at its word (`Invalid endpoint`), while
    here a blank variable means "none" (see settings.py). So the session ignores configured endpoints, and
    each client is given the endpoint Settings read for its service, or none (the service's real one).
    """

    def __init__(self, region: str | None, endpoints: Mapping[str, str] | None = None):
        core = botocore.session.Session()
        core.set_config_variable("ignore_configured_endpoint_urls", True)
        self.session = boto3.session.Session(botocore_session=core, region_name=region)
        self.endpoints = dict(endpoints or {})
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()  # building clients from one session is not thread-safe; using them is

    @classmethod
    def from_settings(cls, aws: AwsSettings) -> AwsSession:
        return cls(aws.region, dict(aws.endpoints))

    def __repr__(self) -> str:
        return f"AwsSession(region={self.session.region_name!r}, endpoints={self.endpoints!r})"

    def endpoint(self, service: str) -> str | None:
        """The service's own endpoint, else the one for every service ("" key), else None (AWS's own)."""
        return self.endpoints.get(service) or self.endpoints.get("")

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(service, endpoint_url=self.endpoint(service))
            return self._clients[service]

    def credentials(self) -> Credentials | None:
        """The session's credentials (refreshed by botocore when they are temporary); None when it has none."""
        return self.session.get_credentials()


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def describe_error(error: ClientError) -> str:
    """AWS's own code and message, which name the cause, and the request id AWS support asks for; never the
    request itself, which may carry credentials."""
    details = error.response.get("Error", {})
    metadata = error.response.get("ResponseMetadata", {})
    code = details.get("Code") or f"HTTP {metadata.get('HTTPStatusCode')}"
    message = details.get("Message") or "no message"
    request_id = metadata.get("RequestId")
    return f"{code}: {message}" + (f" (request id {request_id})" if request_id else "")


@dataclass(frozen=True)
class Backoff:
    """Poll quickly at first (short jobs finish fast), then ever less often (long ones should not be hammered)."""

    initial_seconds: float = 1.0
    factor: float = 2.0
    max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.initial_seconds <= 0 or self.factor < 1 or self.max_seconds < self.initial_seconds:
            raise ValueError(f"unusable {self}: need initial_seconds > 0, factor >= 1, max_seconds >= initial_seconds")

    def delays(self) -> Iterator[float]:
        delay = self.initial_seconds
        while True:
            yield delay
            delay = min(delay * self.factor, self.max_seconds)


class WaitTimedOut(LakeError, TimeoutError):
    """The deadline of a wait passed; the message says what was awaited and for how long."""


class Poller:
    """One deadline shared by every wait of an operation, so a retry after a wait cannot reset the clock."""

    def __init__(
        self,
        timeout_seconds: float,
        backoff: Backoff = Backoff(),
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._sleep = sleep
        self._delays = backoff.delays()
        self._started = clock()

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def pause(self, waiting_for: str) -> None:
        """Sleep before the next poll, or raise WaitTimedOut once the deadline has passed."""
        remaining = self.timeout_seconds - self.elapsed
        if remaining <= 0:
            raise WaitTimedOut(
                f"gave up waiting for {waiting_for} after {self.elapsed:.0f} s (timeout {self.timeout_seconds:.0f} s)"
            )
        self._sleep(min(next(self._delays), remaining))
