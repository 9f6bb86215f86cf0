"""The portal misbehaves: every answer is either retried into a whole year or refused, naming the URL."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from boston_lake.lake.zones.raw import RawIngestError
from boston_lake.sample_portal.server import PortalHandler
from boston_lake_tests.faults.conftest import Lake
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.support.portal import LEGACY_2022_ID, html_page, send_part, status, truncated

Fault = Callable[[PortalHandler, Path], bool]


def reset_mid_body(keep_bytes: int) -> Fault:
    """Send part of the body, then reset the connection (RST, as a dying proxy does)."""

    def answer(handler: PortalHandler, path: Path) -> bool:
        send_part(handler, path, keep_bytes)
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        return True

    return answer


def empty_body() -> Fault:
    def answer(handler: PortalHandler, path: Path) -> bool:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/csv")
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True

    return answer


def stall(seconds: float) -> Fault:
    """Send the headers and half the body, then go silent for longer than the client's read timeout."""

    def answer(handler: PortalHandler, path: Path) -> bool:
        send_part(handler, path, path.stat().st_size // 2)
        time.sleep(seconds)
        handler.close_connection = True
        return True

    return answer


def republish_same_bytes(lake: Lake) -> None:
    """The portal's last_modified moves, the bytes do not: the metadata no longer vouches for the stored year,
    so the next run downloads it again."""
    path = lake.portal.file_for(LEGACY_2022_ID)
    assert path is not None
    later = path.stat().st_mtime + 86_400
    os.utime(path, (later, later))


def assert_year_whole(lake: Lake) -> None:
    assert lake.rows_lost(lake.served()) == 0
    assert lake.staging_debris() == []


def timed(answer: Fault | None, times: list[float]) -> Fault:
    """`answer`, noting when the request came; None serves the file as usual."""

    def note(handler: PortalHandler, path: Path) -> bool:
        times.append(time.monotonic())
        return answer(handler, path) if answer else False

    return note


@fault("portal", "5xx (503, 502)", "retried with backoff; the year is stored whole")
def test_server_errors_are_retried(lake: Lake) -> None:
    lake.portal.faults.extend([status(503), status(502)])
    lake.ingest()
    assert len(lake.portal.downloads()) == 3
    assert_year_whole(lake)


@fault("portal", "429 with Retry-After", "waits what the server asks, then stores the year whole")
def test_too_many_requests_waits_for_retry_after(lake: Lake) -> None:
    asked: list[float] = []
    lake.portal.faults.extend([timed(status(429, retry_after="2"), asked), timed(None, asked)])
    lake.ingest(backoff_seconds=0.01)  # Retry-After, not the backoff, decides the wait
    assert len(asked) == 2 and asked[1] - asked[0] >= 2.0
    assert_year_whole(lake)


@fault("portal", "connection reset mid-body", "retried; the message says how many bytes of how many arrived")
def test_reset_mid_body_is_retried_with_an_honest_count(lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    size = len(lake.served())
    lake.portal.faults.append(reset_mid_body(size // 2))
    lake.ingest()
    retry = next(message for message in caplog.messages if "attempt 1 of 3" in message)
    received = int(retry.split("after ")[1].split(" of ")[0].replace(",", ""))
    assert 0 < received < size and f" of {size:,} bytes" in retry
    assert_year_whole(lake)


@fault("portal", "body shorter than Content-Length", "retried; then stored whole, or refused after 3 attempts")
def test_truncated_body_is_retried_then_refused(lake: Lake) -> None:
    size = len(lake.served())
    lake.portal.faults.append(truncated(size // 3))
    lake.ingest()
    assert_year_whole(lake)
    republish_same_bytes(lake)
    lake.portal.faults.extend([truncated(size // 3)] * 3)
    with pytest.raises(RawIngestError, match=rf"failed 3 times; last error: .* of {size:,} bytes"):
        lake.ingest()
    assert_year_whole(lake)  # the year stored before is still whole


@fault("portal", "HTML page with status 200", "refused at once, naming the URL; the stored year is kept")
def test_html_instead_of_csv_is_refused(lake: Lake) -> None:
    lake.ingest()
    republish_same_bytes(lake)
    lake.portal.faults.append(html_page())
    with pytest.raises(RawIngestError, match=r"answered 200 with an HTML page .* where a CSV file was expected"):
        lake.ingest()
    assert len(lake.portal.downloads()) == 2  # an answer, not a glitch: not retried
    assert_year_whole(lake)


@fault("portal", "403 Forbidden", "refused at once (not retried), naming the URL and the status", rows_lost="n/a")
def test_forbidden_is_not_retried(lake: Lake) -> None:
    lake.portal.faults.append(status(403))
    with pytest.raises(RawIngestError, match=r"/download/.* answered 403"):
        lake.ingest()
    assert len(lake.portal.downloads()) == 1
    assert lake.staging_debris() == []


@fault("portal", "empty body with status 200", "refused, naming the URL; nothing stored", rows_lost="n/a")
def test_empty_body_is_refused(lake: Lake) -> None:
    lake.portal.faults.append(empty_body())
    with pytest.raises(RawIngestError, match=r"answered 200 with an empty body; expected a CSV file"):
        lake.ingest()
    assert not (lake.home / "raw").exists() or not any((lake.home / "raw").rglob("*.csv"))
    assert lake.staging_debris() == []


@fault("portal", "stalls longer than the read timeout", "retried; the year is stored whole")
def test_a_stalled_download_is_retried(lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    lake.portal.faults.append(stall(3))
    lake.ingest(timeout_seconds=0.5)
    assert any("attempt 1 of 3" in message for message in caplog.messages)
    assert_year_whole(lake)
