"""Object stores: the zones of the lake as keys and bytes, the same interface locally and on S3.

Writers never expose a half-written object: `writing()` hands out a private staging file and publishes it
in one step (a rename on a filesystem, a completed upload on S3). A run that dies mid-write leaves the
previous object in place and only hidden staging debris, which the next writer sweeps.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pyarrow.fs as pafs

STAGING_DIR = ".staging"
STALE_STAGING_SECONDS = 24 * 3600


class StoreError(RuntimeError):
    """A store operation failed; the message names the key and the store."""


class ObjectNotFound(StoreError):
    """The key holds no object."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime


class ObjectStore(Protocol):
    """What the lake needs from a zone. Keys are `/`-separated and relative to the zone's root."""

    def uri(self, key: str = "") -> str: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[StoredObject]: ...

    def get_bytes(self, key: str) -> bytes: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def scratch_file(self, suffix: str = "") -> AbstractContextManager[Path]: ...

    def publish(self, path: Path, key: str) -> None: ...

    def writing(self, key: str, suffix: str = "") -> AbstractContextManager[Path]: ...

    def reading(self, key: str) -> AbstractContextManager[Path]: ...

    def copy(self, source: str, destination: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]: ...


def check_key(key: str) -> str:
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(part in ("", ".", "..") for part in parts[:-1])
        or parts[-1] in (".", "..")
    ):
        raise StoreError(f"malformed object key {key!r}")
    return key


class LocalObjectStore:
    """A zone as a folder; what the embedded target uses, and what survives between runs on a laptop."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Every object whose key starts with `prefix`, as S3 lists: "raw/t" matches "raw/tt/x" too."""
        folder = self.root / prefix if prefix.endswith("/") or not prefix else (self.root / prefix).parent
        if not folder.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not (Path(dirpath) == self.root and d == STAGING_DIR))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    stat = path.stat()
                    yield StoredObject(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as error:
            raise ObjectNotFound(f"no object {key!r} in {self.root}") from error

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.writing(key) as staged:
            staged.write_bytes(data)

    @contextmanager
    def scratch_file(self, suffix: str = "") -> Iterator[Path]:
        """A private file on the zone's own filesystem, so that publishing it is a rename, not a copy."""
        staging = self.root / STAGING_DIR
        staging.mkdir(parents=True, exist_ok=True)
        _sweep_stale(staging)
        scratch = staging / f"{uuid.uuid4().hex}{suffix}"
        try:
            yield scratch
        finally:
            scratch.unlink(missing_ok=True)

    def publish(self, path: Path, key: str) -> None:
        """Make a finished local file the object at `key` in one atomic step (readers see old or new)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.parent != self.root / STAGING_DIR:
            with self.scratch_file() as staged:
                shutil.copyfile(path, staged)
                os.replace(staged, target)
            return
        os.replace(path, target)

    @contextmanager
    def writing(self, key: str, suffix: str = "") -> Iterator[Path]:
        """Yield a scratch path to write; publish it at `key` only if the block finishes."""
        with self.scratch_file(suffix) as staged:
            yield staged
            self.publish(staged, key)

    @contextmanager
    def reading(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise ObjectNotFound(f"no object {key!r} in {self.root}")
        yield path

    def copy(self, source: str, destination: str) -> None:
        with self.reading(source) as path, self.writing(destination) as staged:
            shutil.copyfile(path, staged)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), str(self.root)


def _sweep_stale(staging: Path) -> None:
    """Remove staging files left by runs that died; fresh ones may belong to a run still writing."""
    cutoff = time.time() - STALE_STAGING_SECONDS
    for leftover in staging.iterdir():
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except FileNotFoundError:
            pass
