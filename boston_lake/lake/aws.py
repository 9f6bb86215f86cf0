"""What every AWS-facing module of the lake shares: clients built the same way, errors read the same way,
and waits that back off and give up on one deadline.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

_ENDPOINT_VARIABLE = re.compile(r"AWS_ENDPOINT_URL(_[A-Z0-9_]+)?")


def drop_empty_endpoint_variables(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove blank AWS_ENDPOINT_URL* variables and return their names.

    botocore takes a blank endpoint variable (" ") at its word and fails with `Invalid endpoint`; in this
    project a blank variable means unset (see settings.py), and deployment templates often export one so.
    """
    env = os.environ if environ is None else environ
    blank = sorted(name for name, value in env.items() if _ENDPOINT_VARIABLE.fullmatch(name) and not value.strip())
    for name in blank:
        del env[name]
    return blank


def boto3_client(
    service: str, region: str | None = None, *, session: boto3.session.Session | None = None, **kwargs: Any
) -> Any:
    """A boto3 client from the default credential chain, aimed by AWS_ENDPOINT_URL(_<SERVICE>) when one is set.

    A blank `endpoint_url` argument means "none" too: botocore rejects `endpoint_url=""` outright.
    """
    drop_empty_endpoint_variables()
    if not (kwargs.get("endpoint_url") or "").strip():
        kwargs.pop("endpoint_url", None)
    return (session or boto3.session.Session()).client(service, region_name=region, **kwargs)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def describe_error(error: ClientError) -> str:
    """AWS's own code and message, which name the cause; never the request, which may carry credentials."""
    details = error.response.get("Error", {})
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = details.get("Code") or f"HTTP {status}"
    message = details.get("Message") or "no message"
    return f"{code}: {message}"


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


class WaitTimedOut(TimeoutError):
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
