"""A CKAN-like portal on 127.0.0.1 that serves the bundled real sample files.

It speaks the parts of CKAN and HTTP the pipeline relies on (package_show, resource downloads with
Content-Length, ETag and Last-Modified, 304 on If-None-Match), so the demo and the tests exercise the real
client over a real socket. Files are read from a folder on every request: edit one and the portal
publishes a new version, with a new hash, ETag and last_modified, as data.boston.gov would.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import threading
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

DATA_DIR = Path(__file__).parent / "data"
CHUNK_BYTES = 1 << 16
_DOWNLOAD_PATH = re.compile(r"^/dataset/[^/]+/resource/(?P<id>[^/]+)/download/(?P<file>[^/]+)$")
_NAME_NOTE = re.compile(r"\s*\(name_translated\.en; name is null\)$")


class SamplePortal:
    """Serve `data_dir` (laid out like `boston_lake/sample_portal/data`) until `stop()`."""

    def __init__(
        self,
        data_dir: Path = DATA_DIR,
        host: str = "127.0.0.1",
        port: int = 0,
        handler: type[PortalHandler] | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.host = host
        config = json.loads((self.data_dir / "portal.json").read_text())
        self.package = json.loads((self.data_dir / config["package"]).read_text())["result"]
        self.files_by_resource_id: dict[str, str] = dict(config["files_by_resource_id"])
        self.httpd = ThreadingHTTPServer((host, port), handler or PortalHandler)
        self.httpd.daemon_threads = True
        self.httpd.portal = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.httpd.server_port}"

    def start(self) -> SamplePortal:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="sample-portal", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SamplePortal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- content ----------------------------------------------------------------------------------------

    def file_for(self, resource_id: str) -> Path | None:
        name = self.files_by_resource_id.get(resource_id)
        return self.data_dir / name if name else None

    def download_url(self, resource_id: str) -> str:
        file_name = self.files_by_resource_id[resource_id]
        return f"{self.url}/dataset/{self.package['id']}/resource/{resource_id}/download/{file_name}"

    def package_show(self) -> dict[str, Any]:
        package = copy.deepcopy(self.package)
        resources = []
        for resource in package["resources"]:
            path = self.file_for(resource["id"])
            if resource.get("format") == "CSV" and path is None:
                continue  # a data file this sample does not have: not offered
            if _NAME_NOTE.search(resource.get("name") or ""):
                resource["name_translated"] = {"en": _NAME_NOTE.sub("", resource["name"])}
                resource["name"] = None
            if path is not None:
                stat = path.stat()
                resource.update(
                    url=self.download_url(resource["id"]),
                    size=stat.st_size,
                    hash=file_md5(path),
                    last_modified=datetime.fromtimestamp(stat.st_mtime, UTC).replace(tzinfo=None).isoformat(),
                )
            resources.append(resource)
        package["resources"] = resources
        package["num_resources"] = len(resources)
        return {"help": f"{self.url}/api/3/action/help_show?name=package_show", "success": True, "result": package}


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_sample_data(destination: Path) -> Path:
    """A writable copy of the bundled data, for a portal whose files a test or a demo will change."""
    shutil.copytree(DATA_DIR, destination, dirs_exist_ok=True)
    for path in destination.iterdir():
        path.chmod(0o644)
    return destination


class PortalHandler(BaseHTTPRequestHandler):
    """Routes requests; tests subclass it and override `send_download` to inject failures."""

    server_version = "SamplePortal/1.0"
    protocol_version = "HTTP/1.1"

    @property
    def portal(self) -> SamplePortal:
        return self.server.portal  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # quiet: the client logs what matters

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        parsed = urlparse(self.path)
        if parsed.path == "/api/3/action/package_show":
            self.send_package_show(parse_qs(parsed.query).get("id", [""])[0])
            return
        match = _DOWNLOAD_PATH.match(parsed.path)
        path = self.portal.file_for(match["id"]) if match else None
        if path is None or not path.is_file():
            self.send_json(HTTPStatus.NOT_FOUND, {"success": False, "error": {"message": "Not found"}})
            return
        self.send_download(path)

    def send_package_show(self, package_id: str) -> None:
        package = self.portal.package
        if package_id not in (package["id"], package["name"]):
            self.send_json(
                HTTPStatus.NOT_FOUND, {"success": False, "error": {"message": "Not found", "__type": "Not Found Error"}}
            )
            return
        self.send_json(HTTPStatus.OK, self.portal.package_show())

    def send_json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def validators(self, path: Path) -> tuple[str, str]:
        stat = path.stat()
        etag = f'"{file_md5(path)}"'
        return etag, format_datetime(datetime.fromtimestamp(int(stat.st_mtime), UTC), usegmt=True)

    def send_download(self, path: Path) -> None:
        etag, last_modified = self.validators(path)
        if self.headers.get("If-None-Match") == etag:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.end_headers()
        with open(path, "rb") as stream:
            shutil.copyfileobj(stream, self.wfile, CHUNK_BYTES)
