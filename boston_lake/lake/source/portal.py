"""A client for the CKAN portal that publishes Boston's 311 data.

Resources are pinned by id (their download file names rotate), downloads stream to disk with retries and
integrity checks, and conditional requests let an unchanged source cost one round trip instead of 200 MB.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from boston_lake.lake.errors import LakeError
from boston_lake.lake.log import Log

DATASET = "311-service-requests"
CHUNK_BYTES = 1 << 20
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
Answer = TypeVar("Answer")  # what one attempt of a request returns


class PortalError(LakeError, RuntimeError):
    """The portal answered with something other than what was asked for; the message says what and where."""


@dataclass(frozen=True)
class PortalResource:
    id: str
    name: str
    url: str
    format: str = ""
    last_modified: str | None = None
    hash: str | None = None
    size: int | None = None
    datastore_active: bool = False  # the portal also serves the records as JSON through datastore_search

    @property
    def file_name(self) -> str:
        return unquote(Path(urlparse(self.url).path).name)

    @classmethod
    def from_ckan(cls, raw: dict[str, Any]) -> PortalResource:
        name = raw.get("name") or (raw.get("name_translated") or {}).get("en") or ""
        return cls(
            id=raw["id"],
            name=" ".join(name.split()),
            url=raw.get("url") or "",
            format=raw.get("format") or "",
            last_modified=raw.get("last_modified"),
            hash=raw.get("hash") or None,
            size=raw.get("size"),
            datastore_active=raw.get("datastore_active") is True,
        )


@dataclass(frozen=True)
class Validators:
    """What the server said last time, sent back so that it can answer 304 Not Modified."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Download:
    """A finished download; `path` is None when the server answered 304 Not Modified."""

    url: str
    path: Path | None
    bytes: int = 0
    sha256: str = ""
    etag: str | None = None
    last_modified: str | None = None
    seconds: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.path is None


@dataclass(frozen=True)
class ActionResponse:
    """A CKAN action's answer exactly as sent: CKAN reports errors as JSON bodies of 4xx answers, so those are
    answers too, for the caller to read and name."""

    url: str
    status: int
    content_type: str
    body: bytes


class _BodyCutShort(Exception):
    """The connection broke, or the body came shorter than Content-Length, after the headers had arrived:
    the one failure urllib3's Retry cannot see, so the request is started again by `_retried`."""


class CkanPortal:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 60.0,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        progress_interval_seconds: float = 10.0,
        log: Log | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.progress_interval_seconds = progress_interval_seconds
        self.log = log
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "boston_lake/0.1 (python-requests)")
        # Connection trouble and retryable statuses (with the server's Retry-After) are urllib3's to retry.
        retry = Retry(
            total=None,
            connect=max_attempts - 1,
            read=max_attempts - 1,
            status=max_attempts - 1,
            other=0,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_seconds,
            backoff_max=max_backoff_seconds,
            retry_after_max=int(max_backoff_seconds),
            raise_on_status=False,  # the last answer comes back, and _request names its status
        )
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=retry))
        self._sleep = sleep

    # -- metadata ---------------------------------------------------------------------------------------

    def resources(self) -> list[PortalResource]:
        url = f"{self.base_url}/api/3/action/package_show"
        payload = self._get_json(url, {"id": DATASET})
        result = payload.get("result")
        if not payload.get("success") or not isinstance(result, dict):
            raise PortalError(f"{url}?id={DATASET} did not succeed: {payload.get('error') or payload!r:.300}")
        return [PortalResource.from_ckan(raw) for raw in result.get("resources") or []]

    def action(self, name: str, params: dict[str, Any]) -> ActionResponse:
        """GET /api/3/action/<name>: urllib3 retries connection trouble, 429 and 5xx; a body cut short is asked
        for again. Other 4xx answers come back, with CKAN's JSON error in the body."""
        url = f"{self.base_url}/api/3/action/{name}"
        return self._retried(url, lambda: self._action_once(url, params))

    def _action_once(self, url: str, params: dict[str, Any]) -> ActionResponse:
        try:
            response = self.session.get(url, params=params, timeout=self.timeout_seconds, allow_redirects=True)
        except requests.exceptions.ChunkedEncodingError as error:
            raise _BodyCutShort(f"the answer was cut short: {error}") from error
        except requests.exceptions.RequestException as error:
            raise PortalError(f"{url} failed {self.max_attempts} times; last error: {error}") from error
        if response.status_code in RETRY_STATUSES:
            raise PortalError(
                f"{response.url} answered {response.status_code} {response.reason} ({self.max_attempts} attempts)"
            )
        content_type = response.headers.get("Content-Type", "")
        return ActionResponse(response.url, response.status_code, content_type, response.content)

    def _get_json(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        response = self._request(url, params=params)
        with response:
            try:
                payload = response.json()
            except ValueError as error:
                raise PortalError(
                    f"{response.url} answered {response.status_code} with "
                    f"{response.headers.get('Content-Type', 'no content type')}, not JSON: {response.text[:200]!r}"
                ) from error
        if not isinstance(payload, dict):
            raise PortalError(f"{response.url} answered with JSON that is not an object")
        return payload

    # -- downloads --------------------------------------------------------------------------------------

    def download(self, url: str, destination: Path, validators: Validators | None = None) -> Download:
        """Stream `url` into `destination`; verify its length and that it is not an HTML or JSON error page."""
        return self._retried(url, lambda: self._download_once(url, destination, validators))

    def _download_once(self, url: str, destination: Path, validators: Validators | None) -> Download:
        headers = {}
        if validators and validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators and validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        started = time.monotonic()
        response = self._request(url, headers=headers, stream=True)
        with response:
            if response.status_code == 304:
                return Download(
                    url=url,
                    path=None,
                    etag=validators.etag if validators else None,
                    last_modified=validators.last_modified if validators else None,
                )
            expected = _int_or_none(response.headers.get("Content-Length"))
            digest = hashlib.sha256()
            written = 0
            last_report = started
            with open(destination, "wb") as sink:
                try:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        if written == 0:
                            _refuse_error_page(url, response, chunk)
                        sink.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        now = time.monotonic()
                        if self.log and now - last_report >= self.progress_interval_seconds:
                            self.log.info(_progress(url, written, expected, now - started))
                            last_report = now
                except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as error:
                    # What arrived, not what was written: the last chunk may have been cut short mid-read.
                    raise _BodyCutShort(
                        f"connection broke after {_received(response.raw.tell(), expected)}: {error}"
                    ) from error
            wire_bytes = response.raw.tell()
            if expected is not None and wire_bytes != expected:
                raise _BodyCutShort(f"body ended after {_received(wire_bytes, expected)} (Content-Length)")
            if written == 0:
                raise PortalError(f"{url} answered 200 with an empty body; expected a CSV file")
            elapsed = time.monotonic() - started
            if self.log:
                self.log.info(_progress(url, written, expected, elapsed, done=True))
            return Download(
                url=url,
                path=destination,
                bytes=written,
                sha256=digest.hexdigest(),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                seconds=elapsed,
            )

    # -- plumbing ---------------------------------------------------------------------------------------

    def _request(self, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.get(url, timeout=self.timeout_seconds, allow_redirects=True, **kwargs)
        except requests.exceptions.RequestException as error:
            raise PortalError(f"{url} failed {self.max_attempts} times; last error: {error}") from error
        if response.status_code >= 400:
            response.close()
            tries = f" ({self.max_attempts} attempts)" if response.status_code in RETRY_STATUSES else ""
            raise PortalError(f"{response.url} answered {response.status_code} {response.reason}{tries}")
        return response

    def _retried(self, url: str, attempt: Callable[[], Answer]) -> Answer:
        for number in range(1, self.max_attempts + 1):
            try:
                return attempt()
            except _BodyCutShort as error:
                if number == self.max_attempts:
                    raise PortalError(f"{url} failed {number} times; last error: {error}") from error
                delay = min(self.backoff_seconds * 2 ** (number - 1), self.max_backoff_seconds)
                if self.log:
                    self.log.warning(
                        f"{url}: {error}; attempt {number} of {self.max_attempts}, retrying in {delay:.1f}s"
                    )
                self._sleep(delay)
        raise AssertionError("unreachable")


def _refuse_error_page(url: str, response: requests.Response, first_chunk: bytes) -> None:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    head = first_chunk.lstrip(b"\xef\xbb\xbf \t\r\n")[:200]
    lowered = head.lower()
    if content_type == "text/html" or lowered.startswith((b"<!doctype html", b"<html", b"<?xml")):
        kind = "an HTML page"
    elif content_type == "application/json" or lowered.startswith((b"{", b"[")):
        kind = "a JSON document"
    else:
        return
    raise PortalError(
        f"{url} answered {response.status_code} with {kind} (Content-Type: {content_type or 'none'}) "
        f"where a CSV file was expected; it begins {head[:120]!r}"
    )


def _progress(url: str, written: int, expected: int | None, seconds: float, done: bool = False) -> str:
    rate = written / 1e6 / seconds if seconds > 0 else 0.0
    of = f" of {expected / 1e6:.1f} MB ({100 * written / expected:.0f}%)" if expected else ""
    verb = "downloaded" if done else "downloading"
    return f"{verb} {Path(urlparse(url).path).name}: {written / 1e6:.1f} MB{of} in {seconds:.1f}s at {rate:.1f} MB/s"


def _received(count: int, expected: int | None) -> str:
    return f"{count:,} of {expected:,} bytes" if expected is not None else f"{count:,} bytes (no Content-Length)"


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
