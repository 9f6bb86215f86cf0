"""A CKAN-like portal on 127.0.0.1 that serves the bundled real sample files.

It speaks the parts of CKAN and HTTP the pipeline relies on (package_show, resource downloads with
Content-Length, ETag and Last-Modified, 304 on If-None-Match, and `datastore_search` over the records of
every `datastore_active` resource, in CKAN's response shape), so the demo and the tests exercise the real
client over a real socket. Files are read from a folder: edit one and the portal publishes a new version, with
a new hash, ETag and last_modified, as data.boston.gov would; the DataStore serves its pages from the file's
rows parsed once per version.
"""

from __future__ import annotations

import copy
import csv
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
from urllib.parse import parse_qs, urlencode, urlparse

DATA_DIR = Path(__file__).parent / "data"
CHUNK_BYTES = 1 << 16
DATASTORE_ROWS_MAX = 32_000  # CKAN's default ckan.datastore.search.rows_max
DATASTORE_DEFAULT_LIMIT = 100  # CKAN's default limit of datastore_search
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
        datastore_rows_max: int = DATASTORE_ROWS_MAX,
    ):
        self.data_dir = Path(data_dir)
        self.host = host
        self.datastore_rows_max = datastore_rows_max
        config = json.loads((self.data_dir / "portal.json").read_text())
        self.package = json.loads((self.data_dir / config["package"]).read_text())["result"]
        self.files_by_resource_id: dict[str, str] = dict(config["files_by_resource_id"])
        self.httpd = ThreadingHTTPServer((host, port), handler or PortalHandler)
        self.httpd.daemon_threads = True
        self.httpd.portal = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self._datastore_lock = threading.Lock()
        self._datastore_index: dict[Path, tuple[tuple[int, int, int], tuple[list[str], list[dict[str, str]]]]] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.httpd.server_port}"

    def start(self) -> SamplePortal:
        # `stop` waits for the serving loop to notice it, which it checks once per poll: socketserver's default of
        # 0.5 s made every stop (each test that starts a portal) half a second long.
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="sample-portal", daemon=True
        )
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

    def content_md5(self, path: Path) -> str:
        """The file's hash as the portal publishes it (CKAN `hash`, and the ETag); read afresh every time, so an
        edited file is a new version at once. A benchmark serving files that never change may remember it."""
        return file_md5(path)

    def datastore_rows(self, path: Path) -> tuple[list[str], list[dict[str, str]]]:
        """The file's field names and rows as `datastore_search` pages through them: parsed once per version of
        the file (its size, modification time and inode), so paging costs one parse, and an edited file, even one
        edited within the same second, is served at once."""
        version = _file_version(path)
        with self._datastore_lock:
            cached = self._datastore_index.get(path)
            if cached is not None and cached[0] == version:
                return cached[1]
            with open(path, encoding="utf-8", newline="") as stream:
                reader = csv.DictReader(stream)
                rows = list(reader.fieldnames or []), list(reader)
            if _file_version(path) == version:  # not edited while it was read
                self._datastore_index[path] = (version, rows)
            return rows

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
                    hash=self.content_md5(path),
                    last_modified=datetime.fromtimestamp(stat.st_mtime, UTC).replace(tzinfo=None).isoformat(),
                )
            resources.append(resource)
        package["resources"] = resources
        package["num_resources"] = len(resources)
        return {"help": _help(self.url, "package_show"), "success": True, "result": package}

    def datastore_search(self, params: dict[str, str], request_path: str) -> tuple[HTTPStatus, dict[str, Any]]:
        """CKAN's datastore_search over the resource's file: its rows as records numbered by `_id` from 1, every
        field text, an empty cell null (the bundled NEW SYSTEM file was written by csv.DictWriter from this
        API's answers, so this serves them back in their original shape)."""
        resource_id = params.get("resource_id") or params.get("id") or ""
        resource = next((r for r in self.package["resources"] if r["id"] == resource_id), None)
        path = self.file_for(resource_id)
        if resource is None or not resource.get("datastore_active") or path is None:
            message = f'Resource "{resource_id}" was not found.'
            return HTTPStatus.NOT_FOUND, _ckan_error(self.url, "datastore_search", "Not Found Error", message)
        try:
            limit = min(int(params.get("limit", DATASTORE_DEFAULT_LIMIT)), self.datastore_rows_max)
            offset = int(params.get("offset", 0))
        except ValueError:
            return HTTPStatus.CONFLICT, _ckan_error(
                self.url, "datastore_search", "Validation Error", "limit and offset must be integers"
            )
        if params.get("sort", "_id") not in ("_id", "_id asc"):
            return HTTPStatus.CONFLICT, _ckan_error(
                self.url, "datastore_search", "Validation Error", "this sample portal sorts by _id only"
            )
        names, rows = self.datastore_rows(path)
        records = [
            {"_id": number, **{name: row[name] or None for name in names}}
            for number, row in enumerate(rows[offset : offset + limit], start=offset + 1)
        ]
        query = {key: value for key, value in params.items() if key != "offset"}
        result = {
            "include_total": True,
            "limit": limit,
            "records_format": "objects",
            "resource_id": resource_id,
            "total_estimation_threshold": None,
            **({"offset": offset} if "offset" in params else {}),
            **({"sort": params["sort"]} if "sort" in params else {}),
            "records": records,
            "fields": [{"id": "_id", "type": "int"}] + [{"id": name, "type": "text"} for name in names],
            "_links": {
                "start": f"{request_path}?{urlencode(query)}",
                "next": f"{request_path}?{urlencode({**query, 'offset': offset + limit})}",
            },
            "total": len(rows),
            "total_was_estimated": False,
        }
        return HTTPStatus.OK, {"help": _help(self.url, "datastore_search"), "success": True, "result": result}


def _help(base_url: str, action: str) -> str:
    return f"{base_url}/api/3/action/help_show?name={action}"


def _ckan_error(base_url: str, action: str, kind: str, message: str) -> dict[str, Any]:
    return {"help": _help(base_url, action), "success": False, "error": {"message": message, "__type": kind}}


def _file_version(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


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
        if parsed.path == "/api/3/action/datastore_search":
            params = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
            self.send_datastore_page(*self.portal.datastore_search(params, parsed.path))
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

    def send_datastore_page(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self.send_json(status, payload)

    def send_json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def validators(self, path: Path) -> tuple[str, str]:
        stat = path.stat()
        etag = f'"{self.portal.content_md5(path)}"'
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
