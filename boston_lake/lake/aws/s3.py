"""A zone of the lake in an S3 bucket: the ObjectStore of stores.py over boto3, for the `aws` target.

Every transfer goes through boto3's transfer manager, so a 2 GB raw file moves in bounded memory as a
multipart upload, and S3 makes the whole object visible only when the upload completes: publishing is
atomic for readers without any rename. Every write asks for server-side encryption explicitly, so an
object is encrypted even in a bucket whose default encryption was changed behind our back.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pyarrow.fs as pafs
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from boston_lake.lake import layout
from boston_lake.lake.aws.session import describe_error, error_code
from boston_lake.lake.clock import utc_now
from boston_lake.lake.settings import SSE_ALGORITHMS
from boston_lake.lake.stores import (
    Leftover,
    ObjectNotFound,
    StoredObject,
    StoreError,
    Workspace,
    abandoned_workspaces,
    check_key,
    claimed_workspace,
)

_MISSING = {"NoSuchKey", "404", "NotFound"}
_CONDITION_FAILED = {"PreconditionFailed", "ConditionalRequestConflict"}
_AWS_HOST = re.compile(r"\.amazonaws\.com(\.cn)?$")
_MIB = 1024 * 1024

# Parts of 16 MiB, four at a time: at most ~64 MiB in flight per transfer, and a 2 GB file in ~128 parts.
DEFAULT_TRANSFER = TransferConfig(
    multipart_threshold=64 * _MIB, multipart_chunksize=16 * _MIB, max_concurrency=4, use_threads=True
)


class LockHeld(StoreError):
    """Someone else holds the lock and their lease has not expired; the message says who and since when."""


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
        """One partition's local staging folder, claimed on this machine; S3 itself never sees partial objects."""
        return claimed_workspace(self._workspaces(), name)

    def _workspaces(self) -> Path:
        return (self.scratch_dir or Path(tempfile.gettempdir())) / "boston_lake_s3" / self.bucket

    def leftovers(self, clock: Callable[[], datetime] = utc_now) -> tuple[Leftover, ...]:
        """This machine's abandoned staging folders of the bucket, and leases (see `lock`) whose holder died:
        older than their own time to live. The next taker of such a lease takes it over."""
        found = abandoned_workspaces(self._workspaces())
        now = clock()
        for stored in self.list(layout.LOCKS_PREFIX):
            try:
                lease = json.loads(self.get_bytes(stored.key))
                holder, ttl_seconds = lease["holder"], float(lease["ttl_seconds"])
            except (ObjectNotFound, ValueError, KeyError, TypeError):
                continue  # released while we looked, or not a lease of ours
            overdue = (now - stored.last_modified).total_seconds() - ttl_seconds
            if overdue > 0:
                found.append(
                    Leftover(
                        self.uri(stored.key),
                        f"a lease of {holder} that expired {overdue:.0f} s ago, so its holder died; "
                        "the next one to take the lock takes it over",
                    )
                )
        return tuple(found)

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
        self, key: str, *, ttl_seconds: float, holder: str, clock: Callable[[], datetime] = utc_now
    ) -> Iterator[None]:
        """An exclusive lease on `key`, for work that two processes must never do at once.

        Taken with a conditional PUT (If-None-Match: *), so of two racing writers exactly one wins. A lease
        older than `ttl_seconds` belongs to a holder that died: it is taken over with If-Match on its ETag,
        again with one winner. Released with a conditional DELETE on our own ETag, so a holder whose lease
        was taken over cannot delete the new holder's.
        """
        if ttl_seconds <= 0:
            raise StoreError(f"lock {self.uri(key)}: ttl_seconds must be positive, got {ttl_seconds}")
        etag = self._acquire(key, ttl_seconds, holder, clock)
        try:
            yield
        finally:
            self._release(key, etag)

    def _acquire(self, key: str, ttl_seconds: float, holder: str, clock: Callable[[], datetime]) -> str:
        lease = json.dumps({"holder": holder, "acquired_at": clock().isoformat(), "ttl_seconds": ttl_seconds})
        for _attempt in range(2):
            try:
                return self._put_lease(key, lease, IfNoneMatch="*")
            except ClientError as error:
                if error_code(error) not in _CONDITION_FAILED:
                    raise self._error("PutObject (lock)", key, error) from error
            try:
                current = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            except ClientError as error:
                if error_code(error) in _MISSING:
                    continue  # released between our two requests: try to take it again
                raise self._error("GetObject (lock)", key, error) from error
            current_lease = current["Body"].read().decode("utf-8", errors="replace")
            age = (clock() - current["LastModified"]).total_seconds()
            if age <= ttl_seconds:
                raise LockHeld(
                    f"{self.uri(key)} is held ({current_lease}), taken {age:.0f} s ago; "
                    f"its lease lasts {ttl_seconds:.0f} s"
                )
            try:
                return self._put_lease(key, lease, IfMatch=current["ETag"])
            except ClientError as error:
                if error_code(error) in _CONDITION_FAILED | _MISSING:
                    raise LockHeld(f"{self.uri(key)}: another process took over the expired lease first") from error
                raise self._error("PutObject (lock takeover)", key, error) from error
        raise LockHeld(f"{self.uri(key)} changed hands twice while we tried to take it")

    def _put_lease(self, key: str, lease: str, **condition: str) -> str:
        response = self.client.put_object(
            Bucket=self.bucket,
            Key=self.object_key(key),
            Body=lease.encode(),
            **condition,
            **self.encryption.object_arguments(),
        )
        return response["ETag"]

    def _release(self, key: str, etag: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key), IfMatch=etag)
        except ClientError as error:
            if error_code(error) in _CONDITION_FAILED | _MISSING:
                raise StoreError(
                    f"lost the lock {self.uri(key)} before releasing it: the work outlasted the lease and another "
                    "process took it over, so both may have run at once"
                ) from error
            raise self._error("DeleteObject (lock)", key, error) from error

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
