"""S3 misbehaving, for the tests of leases: a throttling proxy in front of moto, and the hand-clearing of a lease.

`s3_proxy` is an HTTP proxy on 127.0.0.1 in front of the moto server that answers chosen requests as a
throttled S3 does. boto3 talks to it over real HTTP, exactly as to moto, and every request it does not throttle
is passed on to moto unchanged; a rule answers `503 SlowDown` (S3's own body) to the first `times` requests of
one method whose path contains a given text, either instead of passing them on, or after passing them on (S3
did the work, the answer was lost), which is the case a retried conditional write has to survive.
"""

from __future__ import annotations

import http.client
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from boston_lake.lake.aws.session import AwsSession
from boston_lake_tests.support.moto_server import MotoServer

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    b"</Error>"
)
# Hop-by-hop headers, and those the proxy sets itself on what it relays.
_NOT_RELAYED = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


@dataclass
class Throttle:
    method: str
    path_contains: str
    times: int
    after_doing_it: bool = False  # pass the request on first, then answer 503 anyway


@dataclass
class S3Proxy:
    url: str
    upstream: str
    rules: list[Throttle] = field(default_factory=list)
    throttled: list[str] = field(default_factory=list)  # "<METHOD> <path>" of every request answered 503
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def throttle(self, method: str, path_contains: str, times: int, *, after_doing_it: bool = False) -> None:
        with self._lock:
            self.rules.append(Throttle(method, path_contains, times, after_doing_it))

    def stop_throttling(self) -> None:
        with self._lock:
            self.rules.clear()

    def rule_for(self, method: str, path: str) -> Throttle | None:
        """The rule that throttles this request, counted as used; None to pass it on untouched."""
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and rule.method == method and rule.path_contains in path:
                    rule.times -= 1
                    self.throttled.append(f"{method} {path}")
                    return rule
        return None


def _handler(proxy: S3Proxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _slow_down(self) -> None:
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOW_DOWN)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(SLOW_DOWN)

        def _relay(self) -> None:
            body = self._body()
            rule = proxy.rule_for(self.command, self.path)
            if rule is not None and not rule.after_doing_it:
                self._slow_down()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_RELAYED - {"content-length"}}
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                headers["Content-Length"] = str(len(body))
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            try:
                connection.request(self.command, self.path, body=body or None, headers=headers)
                response = connection.getresponse()
                answer = response.read()
            finally:
                connection.close()
            if rule is not None:
                self._slow_down()
                return
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in _NOT_RELAYED:
                    self.send_header(name, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(answer)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

    return Handler


@pytest.fixture
def s3_proxy(aws_env: MotoServer) -> Iterator[S3Proxy]:
    """A proxy in front of this test's moto server; aim a client at `s3_proxy.url` to meet its throttling."""
    proxy = S3Proxy(url="", upstream=aws_env.url)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)  # quick to stop
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def delete_as_pasted(command: str) -> None:
    """Run the `aws s3api delete-object …` line a message or `status` prints, as an operator pastes it: with the
    AWS CLI where it is installed, else with boto3 given exactly the bucket, key, endpoint and region it names."""
    words = shlex.split(command)
    assert words[:3] == ["aws", "s3api", "delete-object"], command
    if (aws := shutil.which("aws")) is not None:
        result = subprocess.run([aws, *words[1:]], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return
    options = dict(zip(words[3::2], words[4::2], strict=True))
    client = AwsSession(options.get("--region"), {"": options.get("--endpoint-url", "")}).client("s3")
    client.delete_object(Bucket=options["--bucket"], Key=options["--key"])
