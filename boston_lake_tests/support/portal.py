"""A real CKAN-like HTTP server on 127.0.0.1 serving the bundled samples, with scripted failures.

Tests queue faults (`portal.faults.append(...)`) that the next download requests consume in order, and
DataStore faults (`portal.datastore_faults`) that the next `datastore_search` answers consume in order (None
serves a page as it is), and read `portal.requests` to see what the client sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from boston_lake.sample_portal.redate import legacy_resource_ids, write_redated_year
from boston_lake.sample_portal.server import PortalHandler, SamplePortal, copy_sample_data

LEGACY_2013_ID = "407c5cd0-f764-4a41-adf8-054ff535049e"
LEGACY_2022_ID = "81a7b022-f8fc-4da5-80e4-b160058ca207"
LEGACY_2023_ID = "e6013a93-1321-4f2a-bf91-8d8a02f1e62f"
NEW_SYSTEM_ID = "254adca6-64ab-4c5c-9fc0-a6da622be185"


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]


# Takes the page the portal would send (status, CKAN payload); sends something else, or changes the payload.
DataStoreFault = Callable[[PortalHandler, HTTPStatus, dict[str, Any]], bool] | None


@dataclass
class FaultState:
    faults: list[Callable[[PortalHandler, Path], bool]] = field(default_factory=list)
    datastore_faults: list[DataStoreFault] = field(default_factory=list)
    requests: list[SeenRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FaultyHandler(PortalHandler):
    """Serves like the sample portal, unless a queued fault takes the request."""

    def do_GET(self) -> None:  # noqa: N802
        state: FaultState = self.server.faults  # type: ignore[attr-defined]
        with state.lock:
            state.requests.append(SeenRequest(self.path, dict(self.headers.items())))
        super().do_GET()

    def send_download(self, path: Path) -> None:
        state: FaultState = self.server.faults  # type: ignore[attr-defined]
        with state.lock:
            fault = state.faults.pop(0) if state.faults else None
        if fault is None or not fault(self, path):
            super().send_download(path)

    def send_datastore_page(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        state: FaultState = self.server.faults  # type: ignore[attr-defined]
        with state.lock:
            fault = state.datastore_faults.pop(0) if state.datastore_faults else None
        if fault is None or not fault(self, status, payload):
            super().send_datastore_page(status, payload)


def send_body(handler: PortalHandler, status: int, content_type: str, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def ckan_failure(message: str = "Internal Server Error: the datastore is unavailable") -> DataStoreFault:
    """CKAN's own error answer: `success: false` with its error object."""

    def fault(handler: PortalHandler, status: HTTPStatus, payload: dict[str, Any]) -> bool:
        error = {"help": payload.get("help"), "success": False, "error": {"message": message, "__type": "Error"}}
        send_body(handler, 409, "application/json;charset=utf-8", json.dumps(error).encode())
        return True

    return fault


def html_instead_of_json() -> DataStoreFault:
    def fault(handler: PortalHandler, status: HTTPStatus, payload: dict[str, Any]) -> bool:
        send_body(handler, 200, "text/html; charset=utf-8", b"<!DOCTYPE html><html><body>Maintenance</body></html>")
        return True

    return fault


def json_cut_short(keep_bytes: int) -> DataStoreFault:
    """A complete HTTP answer whose JSON body stops after `keep_bytes` (Content-Length agrees: no transport error)."""

    def fault(handler: PortalHandler, status: HTTPStatus, payload: dict[str, Any]) -> bool:
        send_body(handler, 200, "application/json;charset=utf-8", json.dumps(payload).encode()[:keep_bytes])
        return True

    return fault


def total_becomes(total: int) -> DataStoreFault:
    """The page as it is, but with another `total`: what a DataStore being reloaded answers."""

    def fault(handler: PortalHandler, status: HTTPStatus, payload: dict[str, Any]) -> bool:
        payload["result"]["total"] = total
        return False

    return fault


def ids_shifted(by: int) -> DataStoreFault:
    """The page's records with `_id`s moved by `by`: negative repeats records of the previous page, positive skips."""

    def fault(handler: PortalHandler, status: HTTPStatus, payload: dict[str, Any]) -> bool:
        for record in payload["result"]["records"]:
            record["_id"] += by
        return False

    return fault


def status(code: int, retry_after: str | None = None) -> Callable[[PortalHandler, Path], bool]:
    def fault(handler: PortalHandler, path: Path) -> bool:
        body = b"try again later"
        handler.send_response(code)
        if retry_after is not None:
            handler.send_header("Retry-After", retry_after)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True

    return fault


def send_part(handler: PortalHandler, path: Path, keep_bytes: int) -> None:
    """Answer 200 with a Content-Length promising the whole file, and send only its first `keep_bytes`."""
    data = path.read_bytes()
    handler.send_response(200)
    handler.send_header("Content-Type", "text/csv")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data[:keep_bytes])
    handler.wfile.flush()


def truncated(keep_bytes: int) -> Callable[[PortalHandler, Path], bool]:
    """Promise the whole file in Content-Length, send `keep_bytes`, then drop the connection."""

    def fault(handler: PortalHandler, path: Path) -> bool:
        send_part(handler, path, keep_bytes)
        handler.close_connection = True
        return True

    return fault


def html_page() -> Callable[[PortalHandler, Path], bool]:
    """What a portal behind a login wall or a maintenance page serves: HTML with status 200."""

    def fault(handler: PortalHandler, path: Path) -> bool:
        body = b"<!DOCTYPE html><html><head><title>Analyze Boston</title></head><body>Maintenance</body></html>"
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True

    return fault


class TestPortal(SamplePortal):
    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, data_dir: Path):
        super().__init__(data_dir, handler=FaultyHandler)
        self.state = FaultState()
        self.httpd.faults = self.state  # type: ignore[attr-defined]
        self.pinned_listings: dict[str, dict[str, Any]] = {}

    def package_show(self) -> dict[str, Any]:
        shown = super().package_show()
        for resource in shown["result"]["resources"]:
            resource.update(self.pinned_listings.get(resource["id"], {}))
        return shown

    def edit_records_in_place(self, resource_id: str, data: bytes) -> Path:
        """New records while the package still lists the upload the DataStore was loaded from (an upsert, not a new
        file): nothing in the listing tells a reader that anything changed."""
        (listed,) = [r for r in self.package_show()["result"]["resources"] if r["id"] == resource_id]
        self.pinned_listings.setdefault(resource_id, {key: listed[key] for key in ("last_modified", "hash", "size")})
        return self.replace_file(resource_id, data)

    @property
    def faults(self) -> list[Callable[[PortalHandler, Path], bool]]:
        return self.state.faults

    @property
    def datastore_faults(self) -> list[DataStoreFault]:
        return self.state.datastore_faults

    @property
    def requests(self) -> list[SeenRequest]:
        return self.state.requests

    def datastore_requests(self) -> list[SeenRequest]:
        return [seen for seen in self.requests if "datastore_search" in seen.path]

    def downloads(self) -> list[SeenRequest]:
        return [seen for seen in self.requests if "/download/" in seen.path]

    def legacy_resource_id(self, year: int) -> str:
        return legacy_resource_ids(self.package)[year]

    def offer_legacy_year(self, year: int) -> str:
        """Publish a legacy year the bundled package does not list (a new year), as the sample's years without a
        real extract are built: real rows of the nearest real v2 extract, re-dated."""
        resource_id = f"00000000-0000-4000-8000-00000000{year}"
        self.files_by_resource_id[resource_id] = write_redated_year(self.data_dir, year)
        self.package["resources"].append(
            {"id": resource_id, "name": f"311 SERVICE REQUESTS - {year}", "format": "CSV", "url": ""}
        )
        return resource_id

    def withdraw_legacy_years(self, *years: int) -> None:
        """The portal stops listing these legacy years, as a portal that never published them would."""
        withdrawn = {self.legacy_resource_id(year) for year in years}
        self.package["resources"] = [r for r in self.package["resources"] if r["id"] not in withdrawn]

    def rename_resource(self, resource_id: str, new_id: str) -> None:
        """The portal re-creates a resource under a new id, with the same file (as CKAN does on a re-upload)."""
        self.files_by_resource_id[new_id] = self.files_by_resource_id.pop(resource_id)
        (resource,) = [r for r in self.package["resources"] if r["id"] == resource_id]
        resource["id"] = new_id

    def replace_file(self, resource_id: str, data: bytes) -> Path:
        """Publish new content for a resource, as the city does when it republishes a year."""
        path = self.file_for(resource_id)
        assert path is not None, resource_id
        path.write_bytes(data)
        return path


@pytest.fixture
def portal_data(tmp_path: Path) -> Path:
    return copy_sample_data(tmp_path / "portal_data")


@pytest.fixture
def portal(portal_data: Path) -> Iterator[TestPortal]:
    with TestPortal(portal_data) as server:
        yield server
