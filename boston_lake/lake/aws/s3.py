"""A zone of the lake in an S3 bucket: the ObjectStore of stores.py over boto3, for the `aws` target.

Every transfer goes through boto3's transfer manager, so a 2 GB raw file moves in bounded memory as a
multipart upload, and S3 makes the whole object visible only when the upload completes: publishing is
atomic for readers without any rename. Every write asks for server-side encryption explicitly, so an
object is encrypted even in a bucket whose default encryption was changed behind our back.

Work two processes must never do at once (one partition of one zone, a crawl) is guarded by a lease: an object
under `_locks/` taken with a conditional PUT, so of two machines that share nothing but the bucket exactly one
holds it (`lock`, and `workspace` for a partition).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
import pyarrow.fs as pafs
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from boston_lake.lake import layout
from boston_lake.lake.aws.session import Backoff, Poller, WaitTimedOut, describe_error, error_code
from boston_lake.lake.clock import utc_now
from boston_lake.lake.settings import SSE_ALGORITHMS
from boston_lake.lake.stores import (
    Leftover,
    ObjectNotFound,
    StoredObject,
    StoreError,
    WorkBusy,
    Workspace,
    abandoned_workspaces,
    check_key,
    check_workspace_name,
    claimed_workspace,
)

T = TypeVar("T")
_MISSING = {"NoSuchKey", "404", "NotFound"}
_CONDITION_FAILED = {"PreconditionFailed", "412"}
# Worth asking again: S3 slowing us down, its own failures, and a conditional write that met another at the same
# moment (S3 answers 409 ConditionalRequestConflict and asks for a retry). Other errors are answers.
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "ConditionalRequestConflict",
}
_AWS_HOST = re.compile(r"\.amazonaws\.com(\.cn)?$")
_MIB = 1024 * 1024

# Parts of 16 MiB, four at a time: at most ~64 MiB in flight per transfer, and a 2 GB file in ~128 parts.
DEFAULT_TRANSFER = TransferConfig(
    multipart_threshold=64 * _MIB, multipart_chunksize=16 * _MIB, max_concurrency=4, use_threads=True
)


# How long a partition's claim (`workspace`) lasts when its holder dies without releasing it, e.g. a container
# killed by ECS on another machine: 6 h, as the crawl lease (glue.DEFAULT_LOCK_TTL_SECONDS). A live holder renews
# its lease (`_Heartbeat`), so however long its work takes it is not taken over; a holder seen to have ended (on
# the same host, or by the caller's `holder_ended`) is taken over at once, so the wait applies only to a holder
# that vanished on another machine.
WORK_LEASE_TTL_SECONDS = 6 * 3600
# Taking and releasing a lease retry throttling and 5xx for this long, backing off, then give up naming the lease
# and the command that clears it: a lease left behind would hold its work off until it expires.
LEASE_RETRY_SECONDS = 120.0
LEASE_BACKOFF = Backoff(initial_seconds=0.5, factor=2.0, max_seconds=10.0)


class LockHeld(StoreError):
    """Someone else holds the lock and their lease has not expired; the message says who and until when."""

    def __init__(self, message: str, holder: str | None = None, expires_at: datetime | None = None):
        super().__init__(message)
        self.holder = holder
        self.expires_at = expires_at


@dataclass(frozen=True)
class ServerSideEncryption:
    """SSE-S3 (`AES256`) or SSE-KMS (`aws:kms`, with the account's aws/s3 key unless a key id is given)."""

    algorithm: str = "AES256"
    kms_key_id: str | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in SSE_ALGORITHMS:
            raise ValueError(
                f"server-side encryption {self.algorithm!r} is not supported; use one of {', '.join(SSE_ALGORITHMS)}"
            )
        if self.kms_key_id and self.algorithm != "aws:kms":
            raise ValueError(
                f"a KMS key id ({self.kms_key_id!r}) needs server-side encryption 'aws:kms', not {self.algorithm!r}"
            )

    def object_arguments(self) -> dict[str, str]:
        """The PutObject/CopyObject/CreateMultipartUpload parameters that request this encryption."""
        arguments = {"ServerSideEncryption": self.algorithm}
        if self.kms_key_id:
            arguments["SSEKMSKeyId"] = self.kms_key_id
        return arguments

    def __str__(self) -> str:
        return f"{self.algorithm} ({self.kms_key_id})" if self.kms_key_id else self.algorithm


class S3ObjectStore:
    """A zone as (bucket, key prefix); keys are relative to the prefix, exactly as for LocalObjectStore."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        encryption: ServerSideEncryption = ServerSideEncryption(),
        transfer: TransferConfig = DEFAULT_TRANSFER,
        scratch_dir: Path | None = None,
        credentials: Credentials | None = None,
        run_id: str | None = None,
        holder_ended: Callable[[Mapping[str, Any]], bool] | None = None,
        lease_retry_seconds: float = LEASE_RETRY_SECONDS,
        lease_backoff: Backoff = LEASE_BACKOFF,
    ):
        if not bucket:
            raise StoreError("an S3 store needs a bucket name")
        if prefix and (prefix.startswith("/") or not prefix.endswith("/")):
            raise StoreError(f"S3 key prefix {prefix!r} must not start with '/' and must end with '/'")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.encryption = encryption
        self.transfer = transfer
        self.scratch_dir = scratch_dir
        # pyarrow's S3 filesystem needs the keys themselves: those of the session that built `client`
        # (AwsSession.credentials()), or by default those boto3's default chain finds.
        self.credentials = credentials
        # Recorded in every lease this store takes, so whoever finds it held knows which run holds it.
        self.run_id = run_id
        # The caller's own word on whether a lease's holder has ended (e.g. its run is over): such a lease is
        # taken over at once. It receives the lease as recorded (holder, run_id, host, pid, acquired_at, ...).
        self.holder_ended = holder_ended
        self.lease_retry_seconds = lease_retry_seconds
        self.lease_backoff = lease_backoff

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.uri()!r})"

    def object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as error:
            if error_code(error) in _MISSING:
                return False
            raise self._error("HeadObject", key, error) from error
        return True

    def list(self, prefix: str) -> Iterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        with self._translated("ListObjectsV2", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield StoredObject(item["Key"][len(self.prefix) :], item["Size"], item["LastModified"])

    def get_bytes(self, key: str) -> bytes:
        with self._translated("GetObject", key):
            return self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"].read()

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.writing(key) as staged:
            staged.write_bytes(data)

    @contextmanager
    def scratch_file(self, suffix: str = "") -> Iterator[Path]:
        """A path in a private local folder that does not exist yet; the folder goes when the block ends."""
        with tempfile.TemporaryDirectory(prefix="boston_lake_s3_", dir=self.scratch_dir) as folder:
            yield Path(folder) / f"object{suffix}"

    def workspace(self, name: str) -> AbstractContextManager[Workspace]:
        """One partition's staging folder, claimed across machines: a lease `_locks/work/<name>.json` in the
        bucket (see `lock`), so a second run of the same partition anywhere fails at once with WorkBusy naming
        the holder; then a local folder claimed on this machine, where a killed holder's debris is swept. S3
        itself never sees partial objects."""
        return self._claimed_workspace(name)

    @contextmanager
    def _claimed_workspace(self, name: str) -> Iterator[Workspace]:
        key = layout.work_lease_key(check_workspace_name(name))
        with ExitStack() as claim:
            try:
                taken_over = claim.enter_context(self.lock(key, ttl_seconds=WORK_LEASE_TTL_SECONDS))
            except LockHeld as held:
                if held.holder is None:
                    raise WorkBusy(f"{name} is being claimed by another run at this very moment ({held})") from held
                expiry = f", expires at {_iso(held.expires_at)}" if held.expires_at else ""
                raise WorkBusy(
                    f"{name} is being written by another run ({held.holder}; lease {self.uri(key)}{expiry})"
                ) from held
            work = claim.enter_context(claimed_workspace(self._workspaces(), name))
            if taken_over:
                work.swept.append(f"{self.uri(key)} ({taken_over})")
            yield work

    def _workspaces(self) -> Path:
        return (self.scratch_dir or Path(tempfile.gettempdir())) / "boston_lake_s3" / self.bucket

    def leftovers(self, clock: Callable[[], datetime] = utc_now) -> tuple[Leftover, ...]:
        """This machine's abandoned staging folders of the bucket, and every lease under `_locks/` (partition
        claims and crawl leases): who holds it and since when, when it expires, and who clears it."""
        found = abandoned_workspaces(self._workspaces())
        for stored in self.list(layout.LOCKS_PREFIX):
            current = self._read_lease(stored.key)
            if current is not None:  # else released while we looked
                found.append(Leftover(self.uri(stored.key), self._lease_state(stored.key, current, clock())))
        return tuple(found)

    def _lease_state(self, key: str, current: _Lease, now: datetime) -> str:
        if not current.record:
            return (
                f"an object under the leases' prefix that is not a lease ({current.holder}); "
                f"to remove it once no run holds it: {self.clear_command(key)}"
            )
        expires_at = current.expires_at()
        if expires_at is not None and now > expires_at:
            overdue = (now - expires_at).total_seconds()
            return (
                f"a lease of {current.holder} that expired {overdue:.0f} s ago (at {_iso(expires_at)}), so its "
                "holder died; the next run to take it takes it over"
            )
        expiry = f"expires at {_iso(expires_at)}" if expires_at else "no expiry recorded"
        if _process_ended(current.record) or (self.holder_ended is not None and self.holder_ended(current.record)):
            return (
                f"a lease of {current.holder}, whose process has ended ({expiry}); "
                "the next run to take it takes it over at once"
            )
        return (
            f"a lease held by {current.holder}; {expiry}; taken over at once by the next run if its holder has "
            f"ended; to clear it by hand once no run holds it: {self.clear_command(key)}"
        )

    def clear_command(self, key: str) -> str:
        """The AWS CLI line that deletes the object at `key`, to paste: for a lease nobody will release."""
        command = ["aws", "s3api", "delete-object", "--bucket", self.bucket, "--key", self.object_key(key)]
        endpoint = self.client.meta.endpoint_url
        if endpoint and not _AWS_HOST.search(urlsplit(endpoint).hostname or ""):
            command += ["--endpoint-url", endpoint]
        if self.client.meta.region_name:
            command += ["--region", self.client.meta.region_name]
        return shlex.join(command)

    def publish(self, path: Path, key: str) -> None:
        """One upload: S3 shows the new object only once the PUT or multipart upload completes."""
        object_key = self.object_key(key)
        if not path.is_file():
            raise StoreError(f"cannot publish {path} to {self.uri(key)}: no such file")
        with self._translated("upload", key):
            self.client.upload_file(
                str(path), self.bucket, object_key, ExtraArgs=self.encryption.object_arguments(), Config=self.transfer
            )

    @contextmanager
    def writing(self, key: str, suffix: str = "") -> Iterator[Path]:
        """Yield a scratch path to write; publish it at `key` only if the block finishes."""
        self.object_key(key)  # a malformed key fails before any work is done
        with self.scratch_file(suffix) as staged:
            yield staged
            self.publish(staged, key)

    @contextmanager
    def reading(self, key: str) -> Iterator[Path]:
        with self.scratch_file(Path(key).suffix) as local:
            with self._translated("download", key):
                self.client.download_file(self.bucket, self.object_key(key), str(local), Config=self.transfer)
            yield local

    def copy(self, source: str, destination: str) -> None:
        """A server-side copy (multipart beyond the threshold): the bytes never leave S3."""
        described = f"S3 copy of {self.uri(source)} to {self.uri(destination)}"
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": self.object_key(source)},
                self.bucket,
                self.object_key(destination),
                ExtraArgs=self.encryption.object_arguments(),
                Config=self.transfer,
            )
        except ClientError as error:
            if error_code(error) in _MISSING:
                raise ObjectNotFound(f"no object {self.uri(source)} to copy to {self.uri(destination)}") from error
            raise StoreError(f"{described} failed: {describe_error(error)}") from error
        except (BotoCoreError, Boto3Error) as error:
            raise StoreError(f"{described} failed: {error}") from error

    def delete(self, key: str) -> None:
        with self._translated("DeleteObject", key):
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]:
        """pyarrow's S3 filesystem aimed where this store's client is aimed, with the client's credentials.

        Credentials are frozen at the time of the call (pyarrow cannot refresh botocore's), so call this per
        use rather than keeping the filesystem for hours.
        """
        options: dict[str, Any] = {"region": self.client.meta.region_name}
        endpoint = urlsplit(self.client.meta.endpoint_url)
        if not _AWS_HOST.search(endpoint.hostname or ""):
            options.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme)
        credentials = self.credentials or boto3.session.Session().get_credentials()
        if credentials is None:
            options["anonymous"] = True
        else:
            frozen = credentials.get_frozen_credentials()
            options.update(access_key=frozen.access_key, secret_key=frozen.secret_key, session_token=frozen.token)
        return pafs.S3FileSystem(**options), f"{self.bucket}/{self.prefix}".rstrip("/")

    @contextmanager
    def lock(
        self,
        key: str,
        *,
        ttl_seconds: float,
        holder: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        holder_ended: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> Iterator[str | None]:
        """An exclusive lease on `key`, for work that two processes must never do at once, on any machines.

        Taken with a conditional PUT (If-None-Match: *), so of two racing writers exactly one wins. The lease
        records who holds it: `holder` (words of the caller's), the store's run id, this host and pid (with the
        process's boot, pid namespace and start time, which tell a dead pid from a reused one) and the time. A
        lease is taken over, with If-Match on the ETag just read so again one taker wins, when its holder has
        ended: it is older than its own time to live, or its holder ran on this host and its process is gone,
        or `holder_ended` (else the store's) says so of the recorded lease. Released with a conditional DELETE
        on our own ETag, so a holder whose lease was taken over cannot delete the new holder's. Throttling and
        5xx are retried with backoff for `lease_retry_seconds`, then give up naming the lease and the command
        that clears it. While the block runs, the lease is renewed every third of its time to live (`_Heartbeat`),
        so live work that outlasts the time to live is never taken over. Yields what was taken over (the old
        holder and why), or None.
        """
        if ttl_seconds <= 0:
            raise StoreError(f"lock {self.uri(key)}: ttl_seconds must be positive, got {ttl_seconds}")
        record = self._lease_record(holder, ttl_seconds, clock)
        etag, taken_over = self._acquire(key, record, clock, holder_ended or self.holder_ended)
        heartbeat = _Heartbeat(self, key, record, etag, ttl_seconds / 3)
        try:
            yield taken_over
        finally:
            etag, since_renewed = heartbeat.stop()
            self._release(key, etag, ttl_seconds, since_renewed)

    def _lease_record(self, holder: str | None, ttl_seconds: float, clock: Callable[[], datetime]) -> dict[str, Any]:
        host, pid, since = socket.gethostname(), os.getpid(), _iso(clock())
        who = [holder] if holder else []
        who += [f"run {self.run_id}"] if self.run_id else []
        who += [f"host {host} pid {pid}", f"since {since}"]
        return {
            "holder": ", ".join(who),
            "label": holder,
            "run_id": self.run_id,
            "host": host,
            "pid": pid,
            "process": _process_identity(pid),
            "acquired_at": since,
            "ttl_seconds": ttl_seconds,
            "token": uuid.uuid4().hex,  # tells our own lease from another's after a retried write
        }

    def _acquire(
        self,
        key: str,
        record: dict[str, Any],
        clock: Callable[[], datetime],
        holder_ended: Callable[[Mapping[str, Any]], bool] | None,
    ) -> tuple[str, str | None]:
        body = json.dumps(record).encode()
        for _attempt in range(3):
            try:
                return self._put_lease(key, body, IfNoneMatch="*"), None
            except ClientError as error:
                if error_code(error) not in _CONDITION_FAILED:
                    raise self._error("PutObject (lock)", key, error) from error
            current = self._read_lease(key)
            if current is None:
                continue  # released between our two requests: try to take it again
            if current.token == record["token"]:
                return current.etag, None  # a retried PUT of ours had gone through
            ended = self._ended(current, float(record["ttl_seconds"]), clock, holder_ended)
            if ended is None:
                expires_at = current.expires_at(float(record["ttl_seconds"]))
                raise LockHeld(
                    f"{self.uri(key)} is held by {current.holder}; its lease expires at {_iso(expires_at)}",
                    holder=current.holder,
                    expires_at=expires_at,
                )
            try:
                return self._put_lease(key, body, IfMatch=current.etag), f"the lease of {current.holder}: {ended}"
            except ClientError as error:
                if error_code(error) not in _CONDITION_FAILED | _MISSING:
                    raise self._error("PutObject (lock takeover)", key, error) from error
                again = self._read_lease(key)
                if again is not None and again.token == record["token"]:
                    return again.etag, f"the lease of {current.holder}: {ended}"
                raise LockHeld(f"{self.uri(key)}: another process took over the ended lease first") from error
        raise LockHeld(f"{self.uri(key)} changed hands three times while we tried to take it")

    def _ended(
        self,
        current: _Lease,
        ttl_seconds: float,
        clock: Callable[[], datetime],
        holder_ended: Callable[[Mapping[str, Any]], bool] | None,
    ) -> str | None:
        """Why the lease's holder has ended, or None while it may still be working."""
        expires_at = current.expires_at(ttl_seconds)
        if expires_at is not None and clock() > expires_at:
            return f"it expired at {_iso(expires_at)}"
        if _process_ended(current.record):
            return "its process has ended"
        if holder_ended is not None and current.record and holder_ended(current.record):
            return "its holder has ended"
        return None

    def _put_lease(self, key: str, body: bytes, **condition: str) -> str:
        def put() -> str:
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=self.object_key(key),
                Body=body,
                **condition,
                **self.encryption.object_arguments(),
            )
            return str(response["ETag"])

        return self._retried("PutObject (lock)", key, put)

    def _read_lease(self, key: str) -> _Lease | None:
        """The lease at `key` as it is now, or None if there is none."""

        def get() -> _Lease | None:
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            except ClientError as error:
                if error_code(error) in _MISSING:
                    return None
                raise
            return _Lease.parse(response["ETag"], response["LastModified"], response["Body"].read())

        try:
            return self._retried("GetObject (lock)", key, get)
        except ClientError as error:
            raise self._error("GetObject (lock)", key, error) from error

    def _renew(self, key: str, record: dict[str, Any], etag: str) -> str:
        """Write our lease again (If-Match on our ETag): S3 dates it now, so it lasts a time to live from now.
        Returns its new ETag; raises ClientError (412) when it is no longer ours."""
        body = json.dumps({**record, "renewed_at": _iso(utc_now())}).encode()
        try:
            return self._put_lease(key, body, IfMatch=etag)
        except ClientError as error:
            if error_code(error) not in _CONDITION_FAILED:
                raise
            current = self._read_lease(key)  # a retried write of ours may have gone through: then it is ours
            if current is not None and current.token == record["token"]:
                return current.etag
            raise

    def _release(self, key: str, etag: str, ttl_seconds: float, held_seconds: float) -> None:
        attempts = 0

        def delete() -> None:
            nonlocal attempts
            attempts += 1
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key), IfMatch=etag)

        def gave_up(key: str, operation: str, waited: float, failure: str) -> StoreError:
            expiry = utc_now() + timedelta(seconds=max(ttl_seconds - held_seconds, 0))
            return StoreError(
                f"could not release the lease {self.uri(key)}: S3 {operation} kept failing for {waited:.0f} s "
                f"({failure}). It holds its work off until it expires at {_iso(expiry)}, unless the next run on "
                f"this host finds this process gone; once no run holds it, clear it by hand: "
                f"{self.clear_command(key)}"
            )

        try:
            self._retried("DeleteObject (lock)", key, delete, gave_up)
        except ClientError as error:
            code = error_code(error)
            if code not in _CONDITION_FAILED | _MISSING:
                raise self._error("DeleteObject (lock)", key, error) from error
            # After a retry (ours, or botocore's own), a lease gone or someone else's means an earlier attempt of
            # ours went through (and, within our time to live, another run has since taken the free lease).
            retried = attempts > 1 or error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) > 0
            if retried and (code in _MISSING or held_seconds <= ttl_seconds):
                return
            raise StoreError(
                f"lost the lock {self.uri(key)} before releasing it: the work outlasted the lease and another "
                "process took it over, so both may have run at once"
            ) from error

    def _lease_unavailable(self, key: str, operation: str, waited: float, failure: str) -> StoreError:
        return StoreError(
            f"S3 {operation} of the lease {self.uri(key)} kept failing for {waited:.0f} s ({failure}); "
            "`boston-lake status` lists every lease and who holds it, and one that nobody holds is cleared by "
            f"hand with: {self.clear_command(key)}"
        )

    def _retried(
        self,
        operation: str,
        key: str,
        call: Callable[[], T],
        gave_up: Callable[[str, str, float, str], StoreError] | None = None,
    ) -> T:
        """`call`, asked again with backoff while S3 throttles or fails (5xx, connection lost); other errors
        are answers and propagate. After `lease_retry_seconds`, raises `gave_up(key, operation, waited, failure)`
        (by default: the lease could not be read or written, and how to clear it)."""
        poller = Poller(self.lease_retry_seconds, self.lease_backoff)
        while True:
            try:
                return call()
            except (ClientError, BotoConnectionError, HTTPClientError) as error:
                if not _transient(error):
                    raise
                failure = describe_error(error) if isinstance(error, ClientError) else str(error)
                last = error
            try:
                poller.pause(f"S3 {operation} of {self.uri(key)}")
            except WaitTimedOut:
                raise (gave_up or self._lease_unavailable)(key, operation, poller.elapsed, failure) from last

    @contextmanager
    def _translated(self, operation: str, key: str) -> Iterator[None]:
        try:
            yield
        except ClientError as error:
            raise self._error(operation, key, error) from error
        except (BotoCoreError, Boto3Error) as error:
            # The transfer manager wraps AWS errors in its own (S3UploadFailedError); their text names the cause.
            raise StoreError(f"S3 {operation} of {self.uri(key)} failed: {error}") from error

    def _error(self, operation: str, key: str, error: ClientError) -> StoreError:
        if error_code(error) in _MISSING:
            return ObjectNotFound(f"no object {self.uri(key)}")
        return StoreError(f"S3 {operation} of {self.uri(key)} failed: {describe_error(error)}")


class _Heartbeat:
    """Renews a held lease every `interval` seconds from a thread of its own until stopped, so that work which
    outlasts the lease's time to live is not taken over while its process lives. A renewal S3 refuses because
    the lease is someone else's stops the heartbeat (the release then reports the lock lost); one that fails
    for a while (throttling, a network gap) is tried again at the next beat."""

    def __init__(self, store: S3ObjectStore, key: str, record: dict[str, Any], etag: str, interval: float):
        self.store, self.key, self.record, self.interval = store, key, record, interval
        self.etag = etag
        self.renewed = time.monotonic()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease heartbeat {key}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stopped.wait(self.interval):
            with self._lock:
                if self._stopped.is_set():
                    return
                try:
                    self.etag = self.store._renew(self.key, self.record, self.etag)
                except ClientError as error:
                    if error_code(error) in _CONDITION_FAILED | _MISSING:
                        return  # no longer ours: the release says so
                    continue
                except (StoreError, BotoCoreError):
                    continue
                self.renewed = time.monotonic()

    def stop(self) -> tuple[str, float]:
        """Stop renewing; the lease's current ETag and the seconds since it was last written."""
        with self._lock:
            self._stopped.set()
        self._thread.join()
        return self.etag, time.monotonic() - self.renewed


@dataclass(frozen=True)
class _Lease:
    """A lease as read from S3: its ETag (for a takeover with If-Match), when S3 last wrote it, and its record
    ({} when the object is not a lease this code wrote)."""

    etag: str
    last_modified: datetime
    record: dict[str, Any]
    holder: str  # who holds it, in words

    @classmethod
    def parse(cls, etag: str, last_modified: datetime, body: bytes) -> _Lease:
        text = body.decode("utf-8", errors="replace")
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            return cls(etag, last_modified, {}, text[:200] or "an empty object")
        return cls(etag, last_modified, record, str(record.get("holder") or text[:200]))

    @property
    def token(self) -> object:
        return self.record.get("token")

    def expires_at(self, default_ttl_seconds: float | None = None) -> datetime | None:
        """When S3's own clock says the lease runs out: its write time plus the time to live it records (or the
        taker's, for a lease that records none)."""
        ttl = self.record.get("ttl_seconds", default_ttl_seconds)
        if not isinstance(ttl, int | float) or isinstance(ttl, bool):
            return None
        return self.last_modified + timedelta(seconds=ttl)


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else "an unknown time"


def _transient(error: Exception) -> bool:
    if isinstance(error, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(error) in _TRANSIENT_CODES or status >= 500 or status == 429
    return False


# -- is a lease's holder process still there? -------------------------------------------------------------------
# A pid means something only in its own pid namespace of one boot of one kernel, and a pid is reused once its
# process ends; so a lease records the process's boot id, pid namespace and start time beside host and pid, and
# its holder is judged ended only where all of those can be read (Linux's /proc) and match this process's own.


def _process_space() -> str | None:
    """This process's boot of the kernel and pid namespace, or None where /proc cannot tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot} {namespace}"


def _process_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from its third field (state) on, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def _process_identity(pid: int) -> dict[str, str | None]:
    stat = _process_stat(pid)
    return {"space": _process_space(), "started": stat[19] if stat and len(stat) > 19 else None}


def _process_ended(record: Mapping[str, Any]) -> bool:
    """True only when the lease's holder ran on this host, in this process space, and its process is gone: no
    such pid, a pid reused by a process started later, or a zombie. Anything else may be alive somewhere."""
    pid, process = record.get("pid"), record.get("process")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or not isinstance(process, dict):
        return False
    space = _process_space()
    if space is None or process.get("space") != space:
        return False
    stat = _process_stat(pid)
    if stat is None:
        return True
    return stat[0] in ("Z", "X") or (process.get("started") is not None and stat[19:20] != [process["started"]])
