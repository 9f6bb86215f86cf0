"""The raw zone: every source file exactly as the portal served it, with a manifest beside it.

Legacy years are one resource each. The NEW SYSTEM resource is one growing file: it is downloaded once per
run, kept whole under `_source/`, and cut into years by each case's open date, byte for byte, so that
every case lands in exactly one year, or, if its date names no partition, in `_unassigned/`, counted.
A changed source never overwrites the old one: the previous object is copied to `_history/` first.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from boston_lake.lake import layout
from boston_lake.lake.clock import utc_now_iso
from boston_lake.lake.errors import LakeError
from boston_lake.lake.log import Log
from boston_lake.lake.source.csvscan import (
    CsvFormatError,
    CsvProfile,
    Record,
    iter_records,
    parse_fields,
    profile_file,
)
from boston_lake.lake.source.datastore import DataStoreManifest
from boston_lake.lake.source.manifest import RawManifest, read_manifest
from boston_lake.lake.source.portal import CkanPortal, Download, PortalError, PortalResource
from boston_lake.lake.stores import ObjectStore, WorkBusy, Workspace
from boston_lake.lake.tables import LakeTable
from boston_lake.lake.zones.publish import AcceptedShrink, PartitionBuild, Staged, publish_partition
from boston_lake.lake.zones.year_split import CsvPart, YearSplit, open_year

RAW_ZONE = "raw"


class RawIngestError(LakeError, RuntimeError):
    """A raw partition could not be ingested; the message names the table, year and file."""


class YearNotPublished(PortalError):
    """The portal lists no resource of `table` for `year`; `offered` are the years it does list."""

    def __init__(self, table: str, year: int, offered: list[int]):
        super().__init__(
            f"{table}: the portal offers no resource for {year}; it offers "
            f"{', '.join(map(str, offered)) or 'no years at all'}"
        )
        self.year = year
        self.offered = offered


class RawIngest(list["RawPartition"]):
    """The years a run stored, in order; `unpublished` maps each requested year the portal does not list to why.

    A year the portal does not publish is not a failure: there is nothing to store until the city publishes it."""

    def __init__(self, stored: Iterable[RawPartition] = (), unpublished: dict[int, YearNotPublished] | None = None):
        super().__init__(stored)
        self.unpublished = unpublished or {}


class PartialIngestError(RawIngestError):
    """Some years of a run failed (`failures`: year -> reason); `stored` holds the years that succeeded."""

    def __init__(self, table: str, stored: RawIngest, failures: dict[int, str]):
        super().__init__(
            f"{table}: {len(failures)} of {len(failures) + len(stored)} years failed "
            f"({f'{len(stored)} succeeded and are stored' if stored else 'none is stored'}):\n"
            + "\n".join(f"  {year}: {reason}" for year, reason in failures.items())
        )
        self.stored = stored
        self.failures = failures


@dataclass(frozen=True)
class RawPartition:
    table: str
    year: int
    manifest: RawManifest
    changed: bool
    reason: str

    def metadata(self) -> dict[str, Any]:
        manifest = self.manifest
        return {
            "changed": self.changed,
            "reason": self.reason,
            "key": manifest.key,
            "bytes": manifest.bytes,
            "sha256": manifest.sha256,
            "data_rows": manifest.data_rows,
            "source_url": manifest.source_url,
            "resource_id": manifest.resource_id,
            "downloaded_at": manifest.downloaded_at,
            "etag": manifest.etag or "",
            "last_modified": manifest.http_last_modified or "",
            "invalid_utf8_rows": manifest.invalid_utf8_rows,
        }


@dataclass(frozen=True)
class SplitReport:
    """How one download of a split source was distributed over years; None fields when it was not re-split."""

    source: RawManifest | DataStoreManifest
    rows_by_year: dict[int, int] | None = None
    unassigned_rows: int | None = None


def offered_years(resources: Iterable[PortalResource], table: LakeTable) -> list[int]:
    """The years for which the portal publishes a resource of `table` (none for a split table)."""
    years = set()
    for resource in resources:
        match = table.resource_pattern.match(resource.name)
        if match and "year" in match.groupdict():
            years.add(int(match["year"]))
    return sorted(years)


def pick_resource(
    resources: Sequence[PortalResource], table: LakeTable, year: int | None, pinned_id: str | None, log: Log
) -> PortalResource:
    """The resource for a table (and year): by its pinned id while that exists, else by its name."""
    if pinned_id:
        for resource in resources:
            if resource.id == pinned_id:
                return resource
        log.warning(f"{table.name}: pinned resource {pinned_id} is no longer in the package; resolving by name")
    candidates = [
        resource
        for resource in resources
        if (match := table.resource_pattern.match(resource.name)) and (year is None or int(match["year"]) == year)
    ]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise PortalError(
            f"{table.name}: several resources match {year or 'the source'}: "
            + ", ".join(f"{r.name!r} ({r.id})" for r in candidates)
        )
    if year is None:
        raise PortalError(f"{table.name}: the portal offers no resource named like {table.resource_pattern.pattern!r}")
    raise YearNotPublished(table.name, year, offered_years(resources, table))


def check_years(table: LakeTable, years: Sequence[int], valid_years: Sequence[int]) -> None:
    unknown = sorted(set(years) - set(valid_years))
    if unknown:
        raise RawIngestError(f"{table.name}: no partitions exist for {unknown}; valid years are {list(valid_years)}")


def _stamp(iso: str) -> str:
    return re.sub(r"[^0-9T]", "", iso)[:15] + "Z"


class RawZone:
    def __init__(self, store: ObjectStore, portal: CkanPortal, log: Log):
        self.store = store
        self.portal = portal
        self.log = log

    def ingest(self, table: LakeTable, years: Sequence[int], valid_years: Sequence[int]) -> RawIngest:
        """Bring the requested years of `table` up to date; `valid_years` are all the years partitions exist for.

        Every year is attempted; failures are reported together at the end, naming each year. Years the portal
        does not publish are not failures: they are returned in `unpublished`, and nothing is stored for them.
        """
        resources = self.portal.resources()
        if table.split_by_year:
            partitions, report = self.ingest_split(table, resources, years, valid_years)
            if report.unassigned_rows:
                self.log.warning(
                    f"{table.name}: {report.unassigned_rows} rows have an open date outside "
                    f"{min(valid_years)}-{max(valid_years)} or none at all; "
                    f"kept in {layout.raw_unassigned_prefix(table.name)}"
                )
            return RawIngest(partitions)
        failures: dict[int, str] = {}
        partitions = RawIngest()
        for year in years:
            try:
                partitions.append(self.ingest_year(table, resources, year))
            except YearNotPublished as unpublished:
                self.log.info(f"{table.name} {year}: not published, nothing to store ({unpublished})")
                partitions.unpublished[year] = unpublished
            except (PortalError, RawIngestError, WorkBusy) as error:
                self.log.warning(f"{table.name} {year}: {error}")
                failures[year] = str(error)
        if failures:
            raise PartialIngestError(table.name, partitions, failures)
        return partitions

    # -- one resource per year --------------------------------------------------------------------------

    def ingest_year(self, table: LakeTable, resources: Sequence[PortalResource], year: int) -> RawPartition:
        prefix = layout.raw_partition_prefix(table.name, year)
        previous = read_manifest(self.store, prefix + layout.MANIFEST)
        resource = pick_resource(resources, table, year, previous.resource_id if previous else None, self.log)
        with self._workspace(f"raw.{table.name}.{year}") as work, work.file(".csv") as scratch:
            manifest, changed, reason = self._fetch(table, year, prefix, resource, previous, scratch)
            if not changed:
                return RawPartition(table.name, year, manifest, changed=False, reason=reason)
            self.replace_file(prefix, previous, scratch, manifest)
        return RawPartition(table.name, year, manifest, changed=True, reason=reason)

    # -- one growing resource, split into years ---------------------------------------------------------

    def ingest_split(
        self, table: LakeTable, resources: Sequence[PortalResource], years: Sequence[int], valid_years: Sequence[int]
    ) -> tuple[list[RawPartition], SplitReport]:
        check_years(table, years, valid_years)
        source_prefix = layout.raw_source_prefix(table.name)
        previous = read_manifest(self.store, source_prefix + layout.MANIFEST)
        resource = pick_resource(resources, table, None, previous.resource_id if previous else None, self.log)
        with self._workspace(f"raw.{table.name}.source") as work, work.file(".csv") as scratch:
            source, changed, reason = self._fetch(table, None, source_prefix, resource, previous, scratch)
            if not changed:
                return self._split_stored(table, source, years, valid_years, reason, work)
            # Split before publishing the source: a failed split leaves the previous source in force.
            result = self._split(table, source, scratch, years, valid_years, reason, work)
            self.replace_file(source_prefix, previous, scratch, source)
        return result

    def _split_stored(
        self,
        table: LakeTable,
        source: RawManifest,
        years: Sequence[int],
        valid_years: Sequence[int],
        reason: str,
        work: Workspace,
    ) -> tuple[list[RawPartition], SplitReport]:
        current = {}
        for year in years:
            manifest = read_manifest(self.store, layout.raw_partition_prefix(table.name, year) + layout.MANIFEST)
            if manifest and manifest.source_sha256 == source.sha256 and self.store.exists(manifest.key):
                current[year] = RawPartition(table.name, year, manifest, changed=False, reason=reason)
        if len(current) == len(years):
            return [current[year] for year in years], SplitReport(source)
        with self.store.reading(source.key) as local:
            return self._split(table, source, local, years, valid_years, reason, work)

    def _split(
        self,
        table: LakeTable,
        source: RawManifest,
        path: Path,
        years: Sequence[int],
        valid_years: Sequence[int],
        reason: str,
        work: Workspace,
    ) -> tuple[list[RawPartition], SplitReport]:
        opened_column = table.generations[0].opened_column
        if opened_column not in source.header:
            raise RawIngestError(
                f"{table.name}: {source.source_url} has no {opened_column!r} column to split by; "
                f"header is {source.header}"
            )
        position = source.header.index(opened_column)
        with ExitStack() as stack, open(path, "rb") as reader:
            records = iter_records(reader)
            header = next(records)
            split = YearSplit(
                {year: CsvPart(stack.enter_context(work.file(".csv")), header) for year in years},
                CsvPart(stack.enter_context(work.file(".csv")), header),
                valid_years,
            )
            stack.callback(split.close)
            split.run(records, lambda record: _open_year(record, position))
            partitions = [self._publish_part(table, year, split.parts[year], source, reason) for year in years]
            unassigned = split.unassigned
            self._publish_unassigned(
                table, Path(source.key).name, source, unassigned.path, unassigned.rows, split.unassigned_reasons
            )
        return partitions, SplitReport(source, split.rows_by_year(), unassigned.rows)

    def _publish_part(
        self, table: LakeTable, year: int, part: CsvPart, source: RawManifest, reason: str
    ) -> RawPartition:
        prefix = layout.raw_partition_prefix(table.name, year)
        manifest = replace(
            source,
            year=year,
            key=prefix + Path(source.key).name,
            bytes=part.size,
            sha256=part.digest.hexdigest(),
            data_rows=part.rows,
            invalid_utf8_rows=part.profile.invalid_utf8_rows,
            invalid_utf8_locations=[vars(loc) for loc in part.profile.invalid_utf8_locations],
            source_key=source.key,
            source_sha256=source.sha256,
        )
        return self.publish_split_year(manifest, part.path, reason)

    def publish_split_year(self, manifest: RawManifest, path: Path, reason: str) -> RawPartition:
        """Publish one year cut from a split source (the file at `path`, described by `manifest`) through the
        partition protocol: claimed, kept as it is when its records did not change, else replaced with history."""
        return publish_partition(SplitYearBuild(self, manifest, path, reason), self.log)

    def _publish_unassigned(
        self,
        table: LakeTable,
        name: str,
        source: RawManifest | DataStoreManifest,
        path: Path,
        rows: int,
        reasons: Counter[str],
    ) -> None:
        """Keep the rows of a split source that belong to no partition, with why, beside the partitions; what a
        previous split left there and this one did not is retired to history."""
        prefix = layout.raw_unassigned_prefix(table.name)
        self._retire_unassigned(prefix, keep=prefix + name if rows else None)
        if not rows:
            return
        self.store.publish(path, prefix + name)
        summary = {
            "source_url": source.source_url,
            "source_sha256": source.sha256,
            "rows": rows,
            "reasons": dict(reasons),
        }
        self.store.put_bytes(prefix + layout.MANIFEST, json.dumps(summary, indent=2).encode())

    def _retire_unassigned(self, prefix: str, keep: str | None) -> None:
        """Move the unplaced rows of an earlier split (placed now, or cut from another file) to `_history/`, named
        by time and content: they stop standing for the current source, and nothing is deleted."""
        summary = prefix + layout.MANIFEST
        retired = [
            stored.key
            for stored in self.store.list(prefix)
            if "/" not in stored.key[len(prefix) :] and stored.key not in (summary, keep)
        ]
        for key in retired:
            digest = hashlib.sha256(self.store.get_bytes(key)).hexdigest()
            history = layout.history_prefix(prefix, _stamp(utc_now_iso()), digest)
            self.store.copy(key, history + Path(key).name)
            if keep is None and self.store.exists(summary):
                self.store.copy(summary, history + layout.MANIFEST)
            self.store.delete(key)
            self.log.info(f"{self.store.uri(key)}: the current source leaves no such rows; kept in {history}")
        if keep is None:
            self.store.delete(summary)

    # -- shared steps -----------------------------------------------------------------------------------

    @contextmanager
    def _workspace(self, name: str) -> Iterator[Workspace]:
        """The partition's staging folder, claimed: a second run of it fails at once, a killed one's debris goes."""
        with self.store.workspace(name) as work:
            if work.swept:
                self.log.warning(f"{name}: removed what a killed run left: {', '.join(work.swept)}")
            yield work

    def _fetch(
        self,
        table: LakeTable,
        year: int | None,
        prefix: str,
        resource: PortalResource,
        previous: RawManifest | None,
        scratch: Path,
    ) -> tuple[RawManifest, bool, str]:
        """Download into `scratch`: (the stored manifest, False, why) when nothing changed since `previous`,
        else (the manifest of the new file, to publish, True, why it is new)."""
        stored = previous is not None and self.store.exists(previous.key)
        if previous is not None and stored and previous.vouched_for_by(resource):
            return previous, False, "the portal's metadata (last_modified, hash, size) is that of the stored file"
        # Conditional only while the portal's own metadata agrees nothing changed: then a 304 is trustworthy.
        conditional = previous is not None and previous.describes(resource) and stored
        validators = previous.validators if previous is not None and conditional else None
        download = self.portal.download(resource.url, scratch, validators)
        if download.not_modified:
            assert previous is not None  # a 304 answers only a conditional request
            return previous, False, "the portal answered 304 Not Modified"
        if previous and download.sha256 == previous.sha256 and self.store.exists(previous.key):
            return self._repin(prefix, previous, resource, download)
        manifest = RawManifest.build(
            table=table.name,
            year=year,
            key=prefix + layout.safe_file_name(resource.file_name, f"{table.name}_{year or 'source'}.csv"),
            size=download.bytes,
            sha256=download.sha256,
            profile=self._profile(scratch, download.url),
            resource=resource,
            download=download,
            downloaded_at=utc_now_iso(),
        )
        return manifest, True, _change_reason(previous)

    def _repin(
        self, prefix: str, previous: RawManifest, resource: PortalResource, download: Download
    ) -> tuple[RawManifest, bool, str]:
        """The same bytes as stored: when the portal now serves them under another resource id or other
        validators, the manifest takes those once, so that the next run asks conditionally (and gets a 304)."""
        repinned = previous.repinned(resource, download)
        if repinned == previous:
            return previous, False, "the download is identical to the stored file (same sha256)"
        self.store.put_bytes(prefix + layout.MANIFEST, repinned.to_json())
        moved = f"resource {previous.resource_id} -> {resource.id}, " if previous.resource_id != resource.id else ""
        self.log.info(
            f"{prefix}: the same bytes are now served with new metadata ({moved}validators refreshed); "
            "the manifest follows them so later runs ask conditionally"
        )
        return repinned, False, "the download is identical to the stored file (same sha256); manifest re-pinned"

    def _profile(self, path: Path, url: str) -> CsvProfile:
        try:
            return profile_file(path)
        except CsvFormatError as error:
            raise RawIngestError(f"{url}: {error}") from error

    def replace_file(self, prefix: str, previous: RawManifest | None, path: Path, manifest: RawManifest) -> None:
        """Publish a new raw object and its manifest; the previous object is copied to history first."""
        if previous and self.store.exists(previous.key):
            history = layout.history_prefix(prefix, _stamp(previous.downloaded_at), previous.sha256)
            self.store.copy(previous.key, history + Path(previous.key).name)
            self.store.put_bytes(history + layout.MANIFEST, previous.to_json())
        self.store.publish(path, manifest.key)
        self.store.put_bytes(prefix + layout.MANIFEST, manifest.to_json())
        if previous and previous.key != manifest.key:
            self.store.delete(previous.key)  # already in history: a rename, not a deletion


class SplitYearBuild(PartitionBuild[RawPartition]):
    """One year cut from a split source as the partition protocol publishes it, fingerprinted by the year's own
    records: a new download with the same records for a year leaves the year's file as it is."""

    error = RawIngestError
    holds_cases = False  # a raw year is the source's bytes; the fetch as a whole is guarded before the split

    def __init__(self, zone: RawZone, manifest: RawManifest, path: Path, reason: str):
        assert manifest.year is not None, "a split year's manifest names its year"
        super().__init__(zone.store, RAW_ZONE, manifest.table, manifest.year, manifest.key)
        self.manifest = manifest
        self.path = path
        self.reason = reason
        self.raw = zone
        self.manifest_key = layout.raw_partition_prefix(manifest.table, manifest.year) + layout.MANIFEST
        self.previous: RawManifest | None = None

    def fingerprint(self) -> str:
        return self.manifest.sha256

    def current(self, fingerprint: str) -> RawPartition | None:
        """The stored year when it holds these very records; the manifest then notes which download confirmed it."""
        self.previous = read_manifest(self.store, self.manifest_key)
        previous = self.previous
        if previous is None or previous.sha256 != fingerprint or not self.store.exists(previous.key):
            return None
        confirmed = replace(previous, source_key=self.manifest.source_key, source_sha256=self.manifest.source_sha256)
        if confirmed != previous:
            self.store.put_bytes(self.manifest_key, confirmed.to_json())
        return RawPartition(
            self.table,
            self.year,
            confirmed,
            changed=False,
            reason=f"the year's records are identical to the stored file (the fetch as a whole: {self.reason})",
        )

    def stage(self, work: Workspace, fingerprint: str) -> Staged:
        return Staged(path=self.path)  # written by the split, already whole and hashed

    def publish(self, staged: Staged, accepted: AcceptedShrink | None) -> RawPartition:
        assert staged.path is not None
        self.raw.replace_file(self.partition_prefix, self.previous, staged.path, self.manifest)
        why = _change_reason(self.previous)
        return RawPartition(self.table, self.year, self.manifest, changed=True, reason=why)

    def sweep_strays(self, log: Log) -> None:
        """Raw is never deleted, and readers take a raw year by its manifest's key: a stray file misleads no one."""


def _open_year(record: Record, position: int) -> int | None:
    fields = parse_fields(record)
    return open_year(fields[position]) if position < len(fields) else None


def _change_reason(previous: RawManifest | None) -> str:
    return "first download" if previous is None else f"the source changed since {previous.downloaded_at}"
