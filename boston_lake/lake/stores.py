"""Object stores: the zones of the lake as keys and bytes, the same interface locally and on S3.

Writers never expose a half-written object: `writing()` hands out a private staging file and publishes it
in one step (a rename on a filesystem, a completed upload on S3). A run that dies mid-write leaves the
previous object in place and only hidden staging debris: a partition's writer stages in the partition's own
claimed workspace, so the next run of that partition removes what a killed one left.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pyarrow.fs as pafs

from boston_lake.lake.clock import utc_now_iso
from boston_lake.lake.errors import LakeError

STAGING_DIR = ".staging"
# A loose staging file is claimed by a lock file beside it, held while its writer lives: the sweep removes only
# what no live writer holds, whatever any clock says.
SCRATCH_CLAIM = ".claim"


class StoreError(LakeError, RuntimeError):
    """A store operation failed; the message names the key and the store."""


class ObjectNotFound(StoreError):
    """The key holds no object."""


class WorkBusy(StoreError):
    """Another live process holds the same unit of work (one partition); the message names the holder."""


@dataclass(frozen=True)
class Leftover:
    """Something a killed run left behind: harmless to readers, removed by the next run of the same work."""

    location: str
    description: str

    def __str__(self) -> str:
        return f"{self.location}: {self.description}"


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

    def workspace(self, name: str) -> AbstractContextManager[Workspace]: ...

    def publish(self, path: Path, key: str) -> None: ...

    def writing(self, key: str, suffix: str = "") -> AbstractContextManager[Path]: ...

    def reading(self, key: str) -> AbstractContextManager[Path]: ...

    def copy(self, source: str, destination: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]: ...

    def leftovers(self) -> tuple[Leftover, ...]: ...


class Workspace:
    """The private staging folder of one claimed unit of work (one partition of one zone).

    Everything a writer stages for the unit lives here, so that a run killed mid-write leaves its debris
    where the next run of the same unit finds and removes it.
    """

    def __init__(self, folder: Path, swept: list[str]):
        self.folder = folder
        self.swept = swept  # what a killed holder had left, removed when this claim was taken

    @contextmanager
    def file(self, suffix: str = "") -> Iterator[Path]:
        """A path for one staged file; removed when the block ends unless it was published (moved) first."""
        path = self.folder / f"{uuid.uuid4().hex}{suffix}"
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)


@contextmanager
def exclusive_flock(lock_path: Path, holder: str, busy: Callable[[str], Exception]) -> Iterator[None]:
    """An flock on `lock_path` for the whole block, with `holder` written in the file for whoever finds it
    taken. The kernel releases it even if the holder is killed, so a dead run never blocks the next one.
    When it is taken, raises `busy(<the holder's text>)` at once instead of waiting."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise busy(handle.read().strip() or "another process") from None
        try:
            handle.truncate(0)
            handle.write(holder)
            handle.flush()
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def claimed_workspace(base: Path, name: str) -> Iterator[Workspace]:
    """Claim the unit of work `name` under `base` and yield its staging folder.

    The claim is an flock, so whatever is in the folder when it is taken was left by a holder that died:
    no live writer can own it, and it is removed. The folder itself goes when the block ends, even on failure.
    """
    check_workspace_name(name)
    folder = base / name
    lock_path = base / f"{name}.lock"
    holder = f"pid {os.getpid()} since {utc_now_iso()}"

    def busy(current: str) -> WorkBusy:
        return WorkBusy(f"{name} is being written by another run ({current}; lock file {lock_path})")

    with exclusive_flock(lock_path, holder, busy):
        swept = sorted(str(path.relative_to(base)) for path in folder.rglob("*") if path.is_file())
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            yield Workspace(folder, swept)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def check_workspace_name(name: str) -> str:
    """A unit of work's name is one plain path segment (e.g. `bronze.legacy_requests.2023`)."""
    if not name or "/" in name or name.startswith("."):
        raise StoreError(f"malformed workspace name {name!r}")
    return name


def abandoned_workspaces(base: Path) -> list[Leftover]:
    """The claimed workspaces under `base` whose holder died: its holder line stays in the lock file (a clean
    release empties it) and names a process that no longer exists. Read only: status never takes a claim."""
    found = []
    for lock_path in sorted(base.glob("*.lock")) if base.is_dir() else []:
        holder = lock_path.read_text(encoding="utf-8", errors="replace").strip()
        if not holder or _holder_alive(holder):
            continue
        folder = lock_path.with_suffix("")
        files = sum(1 for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else 0
        found.append(
            Leftover(
                str(folder),
                f"left by a killed run ({holder}), {files} staged files; the next run of {folder.name} removes them",
            )
        )
    return found


def _holder_alive(holder: str) -> bool:
    """Whether the process a holder line names still runs; a line of another shape is taken as alive."""
    match = re.match(r"pid (\d+) ", holder)
    if match is None:
        return True
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


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
        sweep_unclaimed(staging)
        with claimed_scratch(staging, suffix) as scratch:
            yield scratch

    def workspace(self, name: str) -> AbstractContextManager[Workspace]:
        """One partition's staging folder inside the zone, so that its files publish by rename."""
        return claimed_workspace(self.root / STAGING_DIR, name)

    def publish(self, path: Path, key: str) -> None:
        """Make a finished local file the object at `key` in one atomic step (readers see old or new)."""
        target = self.path(key)
        if not path.resolve().is_relative_to(self.root / STAGING_DIR):
            with self.scratch_file() as staged:
                shutil.copyfile(path, staged)
                _replace_into_folder(staged, target)
            return
        _replace_into_folder(path, target)

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
        """Remove the object, and the folders it leaves empty: like S3, a prefix exists only while it holds
        objects (a cleared `_refused/` version leaves nothing behind)."""
        path = self.path(key)
        path.unlink(missing_ok=True)
        for folder in path.parents:
            if folder == self.root:
                break
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): the folders above are not empty either
                break

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), str(self.root)

    def leftovers(self) -> tuple[Leftover, ...]:
        return tuple(abandoned_workspaces(self.root / STAGING_DIR))


def _replace_into_folder(path: Path, target: Path) -> None:
    """Rename `path` to `target`, creating its folder; again if a delete emptied and removed it in between."""
    while True:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)
            return
        except FileNotFoundError:
            if not path.exists():
                raise


@contextmanager
def claimed_scratch(staging: Path, suffix: str) -> Iterator[Path]:
    """A new staging path, claimed (an flock on its `.claim` file) before it exists and until it is gone."""
    while True:
        scratch = staging / f"{uuid.uuid4().hex}{suffix}"
        claim = scratch.with_name(scratch.name + SCRATCH_CLAIM)
        descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            if os.stat(claim).st_ino == os.fstat(descriptor).st_ino:
                break  # still ours: no sweep took the claim between its creation and our lock
        except FileNotFoundError:
            pass
        os.close(descriptor)
    try:
        yield scratch
    finally:
        scratch.unlink(missing_ok=True)
        claim.unlink(missing_ok=True)
        os.close(descriptor)


def _held(claim: Path) -> bool:
    """True while a live process holds the claim's flock (the kernel drops it when its holder dies)."""
    try:
        descriptor = os.open(claim, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)  # closing releases a lock we took
    return False


def sweep_unclaimed(staging: Path) -> list[str]:
    """Remove the loose staging files that no live writer claims (its run died), and their claims; return their
    names. Workspaces (folders) and their lock files are left to the next claim of their unit of work."""
    swept = []
    for leftover in sorted(staging.iterdir()):
        if leftover.suffix == ".lock" or not leftover.is_file():
            continue
        data = leftover.with_name(leftover.name.removesuffix(SCRATCH_CLAIM))
        claim = data.with_name(data.name + SCRATCH_CLAIM)
        if _held(claim):
            continue
        for path in (data, claim):
            if path.exists():
                path.unlink(missing_ok=True)
                swept.append(path.name)
    return swept
