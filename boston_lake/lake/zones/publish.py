"""One protocol for publishing a partition of any zone: fingerprint → already built? → stage → audit → publish →
sweep strays.

A zone supplies the pieces as a `PartitionBuild`: the fingerprint of what the year is built from, whether the
published version is current for it, how to build a staged version, the staged version's blocking audits, and how
to publish it with its side files. `publish_partition` runs them in that order, inside the partition's claimed
workspace (a second run of the same partition fails at once; what a killed run left is swept), so every zone gets
the same guarantees:

- a staged version that fails a blocking audit never replaces the published one: readers keep the old year;
- the refused version is kept for inspection at `_refused/<zone>/<table>/year=YYYY/` of the same store
  (bookkeeping, outside every table's prefix: no reader or crawler sees it), its URI is in the error
  (`PublishRefused`, one line), and the next attempt of that partition removes it;
- a year that holds cases may not lose more than a set share of its published rows or case ids in one build (the
  shrink guard, BOSTON_LAKE_MAX_SHRINK), unless the run accepts the shrink with a reason (`ShrinkGuard.accept`);
  a first build has nothing to shrink from;
- once published, data files in the partition that this writer did not produce are removed: they would double
  the year for readers.

It also holds what every zone uses to know an object by its content (`sha256_of_file`, `object_sha256`).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from boston_lake.lake import layout
from boston_lake.lake.errors import LakeError
from boston_lake.lake.log import Log
from boston_lake.lake.settings import MAX_SHRINK, share
from boston_lake.lake.stores import ObjectStore, StoredObject, WorkBusy, Workspace

R = TypeVar("R")
DEFAULT_MAX_SHRINK = share(MAX_SHRINK)
SHRINK_CHECK = "shrink_within_limit"
EXAMPLES = 5
_HASH_CHUNK = 1 << 20


# -- what a refusal says ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFailure:
    """Why one blocking audit refuses a staged version, with the figures it compared."""

    check: str
    published: dict[str, int]  # figures of the published version (empty: nothing is published)
    staged: dict[str, int]
    detail: str = ""

    def text(self) -> str:
        published = _figures(self.published) if self.published else "nothing"
        detail = f"; {self.detail}" if self.detail else ""
        return f"published {published}, staged {_figures(self.staged)}{detail}"


def _figures(figures: dict[str, int]) -> str:
    return ", ".join(f"{value:,} {name}" for name, value in figures.items())


class PublishRefused(LakeError, RuntimeError):
    """A staged version failed a blocking audit and was not published; the published version stays.

    Its message is one line: the table, the year, the check, the published and staged figures, and where the
    refused version is kept. The fields are there for whoever reports it (the Dagster wiring's metadata)."""

    def __init__(self, zone: str, table: str, year: int, failures: tuple[AuditFailure, ...], refused_uri: str):
        self.zone = zone
        self.table = table
        self.year = year
        self.failures = failures
        self.refused_uri = refused_uri
        super().__init__(self.line)

    @property
    def check(self) -> str:
        return self.failures[0].check

    @property
    def line(self) -> str:
        first, others = self.failures[0], self.failures[1:]
        also = f" (also failed: {', '.join(failure.check for failure in others)})" if others else ""
        accept = (
            " (to publish it anyway, run again with accept_shrink: <the reason>)" if first.check == SHRINK_CHECK else ""
        )
        return (
            f"{self.zone}/{self.table} {self.year}: not published, {first.check} refused the staged version: "
            f"{first.text()}{also}; the published version stays; the refused one is kept at {self.refused_uri}{accept}"
        )

    def metadata(self) -> dict[str, Any]:
        first = self.failures[0]
        return {
            "table": f"{self.zone}/{self.table}",
            "year": self.year,
            "check": first.check,
            "published": first.published,
            "staged": first.staged,
            "refused_uri": self.refused_uri,
            "failed_checks": [failure.check for failure in self.failures],
        }


# -- the shrink guard -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShrinkGuard:
    """How much of its published rows or case ids a year may lose in this build, and the run's reason to accept a
    larger loss (empty: not accepted)."""

    max_share: float = DEFAULT_MAX_SHRINK
    accept: str = ""

    @property
    def reason(self) -> str:
        return self.accept.strip()


DEFAULT_GUARD = ShrinkGuard()  # BOSTON_LAKE_MAX_SHRINK's default, no shrink accepted


@dataclass(frozen=True)
class Census:
    """Rows and distinct case ids of one version of a year (ids as text, so that any id type compares; ascending)."""

    rows: int
    ids: pa.Array

    @classmethod
    def of(cls, parquet: pq.ParquetFile, id_column: str, withdrawn_column: str | None = None) -> Census:
        """The census of the cases the source lists: rows with a `withdrawn_column` value are not counted."""
        if withdrawn_column is None or withdrawn_column not in parquet.schema_arrow.names:
            column = parquet.read(columns=[id_column]).column(id_column).cast(pa.string())
            return cls(parquet.metadata.num_rows, distinct_values(column))
        read = parquet.read(columns=[id_column, withdrawn_column])
        live = read.filter(pc.is_null(read.column(withdrawn_column)))
        return cls(live.num_rows, distinct_values(live.column(id_column).cast(pa.string())))

    def figures(self) -> dict[str, int]:
        return {"rows": self.rows, "case ids": len(self.ids)}


def sorted_values(values: pa.ChunkedArray) -> pa.Array:
    """The values ascending, nulls left out: sorting holds a few copies of the column, less than a hash table of its
    values (`pc.unique`, `value_counts`) takes."""
    ordered = values.drop_null().combine_chunks()
    return ordered.take(pc.sort_indices(ordered))


def distinct_values(values: pa.ChunkedArray) -> pa.Array:
    """The distinct values, ascending, nulls left out. Found by sorting: the shrink guard's two censuses of the largest
    silver year (673,391 ids) peaked at 231 MiB RSS instead of 252 with `pc.unique` (Arrow's pool 72 instead of 95)."""
    ordered = sorted_values(values)
    if len(ordered) < 2:
        return ordered
    later = ordered.slice(1)
    return pa.concat_arrays(
        [ordered.slice(0, 1), later.filter(pc.not_equal(later, ordered.slice(0, len(ordered) - 1)))]
    )


@dataclass(frozen=True)
class AcceptedShrink:
    """A shrink beyond the limit that the run accepted, with the operator's reason: recorded with the year."""

    reason: str
    published_rows: int
    staged_rows: int
    published_ids: int
    staged_ids: int
    vanished_ids: int

    def metadata(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "published_rows": self.published_rows,
            "staged_rows": self.staged_rows,
            "published_case_ids": self.published_ids,
            "staged_case_ids": self.staged_ids,
            "vanished_case_ids": self.vanished_ids,
        }


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def shrink_failure(published: Census, staged: Census, max_share: float) -> AuditFailure | None:
    """The shrink guard: a year may lose at most `max_share` of its published rows and of its published case ids."""
    vanished = published.ids.filter(pc.invert(pc.is_in(published.ids, value_set=staged.ids)))
    lost_rows = published.rows - staged.rows
    row_share = lost_rows / published.rows if published.rows else 0.0
    id_share = len(vanished) / len(published.ids) if len(published.ids) else 0.0
    if row_share <= max_share and id_share <= max_share:
        return None
    examples = ", ".join(vanished.slice(0, EXAMPLES).to_pylist())
    lost = f"{lost_rows:,} rows lost ({_percent(row_share)})" if lost_rows > 0 else "no rows lost"
    return AuditFailure(
        SHRINK_CHECK,
        published.figures(),
        staged.figures(),
        f"{lost}, {len(vanished):,} case ids vanished ({_percent(id_share)}"
        + (f"; e.g. {examples}" if examples else "")
        + f"); at most {_percent(max_share)} may go",
    )


# -- a zone's pieces --------------------------------------------------------------------------------------------


@dataclass
class Staged:
    """A version of one partition built but not published: a local file in the workspace (`path`) or an object in
    the store under a prefix no reader reads (`key`), and its side files (file name -> local path) that are kept
    with it when it is refused."""

    path: Path | None = None
    key: str | None = None
    side_files: dict[str, Path] = field(default_factory=dict)


class PartitionBuild(ABC, Generic[R]):
    """The pieces one zone supplies to publish one year of one table; `publish_partition` runs them in order."""

    error: type[Exception] = LakeError  # the zone's own error, for what the protocol itself reports
    # False for a zone whose versions are source files, not Parquet with case ids (raw): no census, no shrink guard.
    holds_cases: bool = True
    # A column whose value marks a case the source withdrew (kept, not counted by the shrink guard); None: none.
    withdrawn_column: str | None = None
    # False once `current` found the published version damaged: it is no baseline for the shrink guard.
    published_is_baseline: bool = True

    def __init__(self, store: ObjectStore, zone: str, table: str, year: int, data_key: str):
        self.store = store
        self.zone = zone
        self.table = table
        self.year = year
        self.data_key = data_key

    @property
    def label(self) -> str:
        """How the zone's messages name the partition."""
        return f"{self.zone}/{self.table} {self.year}"

    @property
    def workspace_name(self) -> str:
        return f"{self.zone}.{self.table}.{self.year}"

    @property
    def partition_prefix(self) -> str:
        return self.data_key.rsplit("/", 1)[0] + "/"

    @abstractmethod
    def fingerprint(self) -> str:
        """What the year is built from (inputs and code version): equal fingerprints build the same year."""

    @abstractmethod
    def current(self, fingerprint: str) -> R | None:
        """The published version, if it is whole and was built from `fingerprint`; None: build it."""

    @abstractmethod
    def stage(self, work: Workspace, fingerprint: str) -> Staged:
        """Build the year where no reader sees it (the workspace, or a staging prefix of the store)."""

    def id_column(self, schema: pa.Schema) -> str | None:
        """The case id column of a version with `schema`; None: the zone has no cases to guard."""
        return None

    def audits(self, staged: Staged, published: Census | None) -> list[AuditFailure]:
        """The zone's blocking audits of the staged version (the shrink guard is the protocol's own)."""
        return []

    @abstractmethod
    def publish(self, staged: Staged, accepted: AcceptedShrink | None) -> R:
        """Make the staged version the published one, with its side files, and describe it."""

    def discard(self, staged: Staged) -> None:
        """Remove what `stage` left outside the workspace (called whether or not the version was published)."""

    def published_key(self) -> str | None:
        """The object readers read for the year now (the shrink guard's baseline); None: nothing is published."""
        return self.data_key if self.store.exists(self.data_key) else None

    def sweep_strays(self, log: Log) -> None:
        """Data files in the partition that this writer did not produce would double the year for readers."""
        for stray in list(self.store.list(self.partition_prefix)):
            if stray.key != self.data_key and not layout.is_bookkeeping(stray.key):
                log.warning(f"{self.label}: removing stray data file {stray.key} from the partition")
                self.store.delete(stray.key)


# -- the protocol -----------------------------------------------------------------------------------------------


def publish_partition(
    build: PartitionBuild[R], log: Log, *, force: bool = False, shrink: ShrinkGuard = DEFAULT_GUARD
) -> R:
    """Fingerprint → already built? → stage → audit → publish → sweep strays, for one partition of one zone.

    Raises PublishRefused when a blocking audit refuses the staged version (the published one stays), and the
    zone's error when another run holds the partition."""
    with _claimed(build, log) as work:
        _remove_refused(build, log)
        fingerprint = build.fingerprint()
        if not force:
            current = build.current(fingerprint)
            if current is not None:
                return current
        staged = build.stage(work, fingerprint)
        try:
            accepted, failures = _audit(build, staged, shrink, log)
            if failures:
                raise _refuse(build, staged, failures)
            result = build.publish(staged, accepted)
        finally:
            build.discard(staged)
        build.sweep_strays(log)
        return result


@contextmanager
def _claimed(build: PartitionBuild[Any], log: Log) -> Iterator[Workspace]:
    """The partition's staging folder, claimed: a second build of it fails at once, a killed one's debris goes."""
    try:
        with build.store.workspace(build.workspace_name) as work:
            if work.swept:
                log.warning(f"{build.label}: removed what a killed run left: {', '.join(work.swept)}")
            yield work
    except WorkBusy as busy:
        raise build.error(f"{build.label}: {busy}") from busy


def _remove_refused(build: PartitionBuild[Any], log: Log) -> None:
    prefix = layout.refused_prefix(build.zone, build.table, build.year)
    for refused in list(build.store.list(prefix)):
        build.store.delete(refused.key)
        log.info(f"{build.label}: removed the version an earlier attempt refused: {build.store.uri(refused.key)}")


def _audit(
    build: PartitionBuild[Any], staged: Staged, shrink: ShrinkGuard, log: Log
) -> tuple[AcceptedShrink | None, list[AuditFailure]]:
    if not build.holds_cases:
        return None, build.audits(staged, None)
    published = _published_census(build, log)
    failures = build.audits(staged, published)
    accepted = None
    staged_census = _census(build, _open_staged(build, staged))
    if published is not None and staged_census is not None:
        shrunk = shrink_failure(published, staged_census, shrink.max_share)
        if shrunk is not None and shrink.reason:
            accepted = AcceptedShrink(
                shrink.reason,
                published.rows,
                staged_census.rows,
                len(published.ids),
                len(staged_census.ids),
                _vanished(published, staged_census),
            )
            log.warning(f"{build.label}: shrink accepted ({shrink.reason}): {shrunk.text()}")
        elif shrunk is not None:
            failures.append(shrunk)
    return accepted, failures


def _vanished(published: Census, staged: Census) -> int:
    return int(pc.sum(pc.invert(pc.is_in(published.ids, value_set=staged.ids))).as_py() or 0)


def _census(build: PartitionBuild[Any], parquet: pq.ParquetFile) -> Census | None:
    id_column = build.id_column(parquet.schema_arrow)
    return Census.of(parquet, id_column, build.withdrawn_column) if id_column is not None else None


def _published_census(build: PartitionBuild[Any], log: Log) -> Census | None:
    """Rows and ids of the version readers see now; None when there is none or it cannot be read (then there is
    nothing to compare with: a damaged year is rebuilt without the shrink guard, and the log says so)."""
    published_key = build.published_key()
    if published_key is None:
        return None
    if not build.published_is_baseline:
        log.warning(f"{build.label}: the published version is damaged; the staged version is not compared with it")
        return None
    try:
        return _census(build, open_parquet(build.store, published_key))
    except (OSError, ValueError, pa.ArrowException) as error:  # ValueError: a header of no known generation
        log.warning(
            f"{build.label}: the published {build.store.uri(published_key)} cannot be read ({error}); "
            "the staged version is not compared with it"
        )
        return None


def _open_staged(build: PartitionBuild[Any], staged: Staged) -> pq.ParquetFile:
    if staged.path is not None:
        return pq.ParquetFile(staged.path)
    if staged.key is None:
        raise build.error(f"{build.label}: the staged version names neither a file nor an object")
    return open_parquet(build.store, staged.key)


def _refuse(build: PartitionBuild[Any], staged: Staged, failures: list[AuditFailure]) -> PublishRefused:
    """Keep the refused version (and its side files) outside the table, where the next attempt removes it."""
    prefix = layout.refused_prefix(build.zone, build.table, build.year)
    kept = prefix + PurePosixPath(build.data_key).name
    if staged.path is not None:
        build.store.publish(staged.path, kept)
    elif staged.key is not None:
        build.store.copy(staged.key, kept)
    for name, path in staged.side_files.items():
        if path.exists():
            build.store.publish(path, prefix + name)
    return PublishRefused(build.zone, build.table, build.year, tuple(failures), build.store.uri(kept))


# -- objects by their content -----------------------------------------------------------------------------------


def open_parquet(store: ObjectStore, key: str) -> pq.ParquetFile:
    """The object at `key` as Parquet, read through the store's filesystem (footer first, columns on demand)."""
    filesystem, base = store.arrow_filesystem()
    return pq.ParquetFile(filesystem.open_input_file(f"{base}/{key}"))


def footer_metadata(parquet: pq.ParquetFile) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in (parquet.metadata.metadata or {}).items()}


def stored_object(store: ObjectStore, key: str) -> StoredObject | None:
    return next((stored for stored in store.list(key) if stored.key == key), None)


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of_object(store: ObjectStore, key: str) -> str:
    """The sha256 of the object's bytes, read through the store's filesystem (never downloaded to a file)."""
    filesystem, base = store.arrow_filesystem()
    digest = hashlib.sha256()
    with filesystem.open_input_stream(f"{base}/{key}") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ObjectRecord:
    """What a build recorded of the object it published: its content (sha256), and its size and time as the store
    listed them right after publishing, which let a later check skip reading it while it is untouched."""

    key: str
    size: int
    last_modified: str
    sha256: str | None  # None in records written before content identity: verify by re-reading

    @classmethod
    def of(cls, stored: StoredObject, sha256: str | None) -> ObjectRecord:
        return cls(stored.key, stored.size, stored.last_modified.isoformat(), sha256)

    def untouched(self, stored: StoredObject) -> bool:
        """The object is still the very one recorded: same size and modification time (nothing wrote it since)."""
        return stored.size == self.size and stored.last_modified.isoformat() == self.last_modified


def object_sha256(store: ObjectStore, stored: StoredObject, record: ObjectRecord | None = None) -> str:
    """The sha256 of the object `stored`: the record's when the object is untouched since it was recorded, else
    read and hashed (a lake copied with `cp -r` or restored from a tar has new times and the same content)."""
    if record is not None and record.sha256 and record.untouched(stored):
        return record.sha256
    return sha256_of_object(store, stored.key)
