"""The raw zone of a split table read from the CKAN DataStore (JSON) instead of the resource's CSV file.

A full read pages through every record (see `datastore.py`). Its pages are kept as received under
`_source/datastore/` with a manifest (resource id, total, pages, sha256, fetched_at); each year's records
are cut from them by open date into one JSON-lines file per year (`year=YYYY/<table>_YYYY.jsonl`, one
record per line, values exactly as sent). Records whose open date names no partition go to `_unassigned/`,
counted. Every record lands exactly once, or nothing is published: the years add up to `total`.

A refresh continues the stored fetch: it asks only for the records past the stored ones (one request when there
are none, and then nothing is read or written). New records become new pages beside the stored ones, and the
years are cut again from all of them. A DataStore that holds fewer records than stored, other fields, or `_id`s
that do not continue the stored ones is read in full at once. A record edited in place under its old `_id` is
seen only by a full read: one is made when the portal lists a new upload of the resource (its last_modified or
hash differ from those of the last full read: the city republishes the file, and the DataStore is reloaded from
it), when the last full read is `full_read_days` old (for a DataStore edited without a new upload), or when a
run asks for it.

Nothing is written before the whole fetch has been checked, and a year whose records did not change is
not rewritten, so a refresh that finds nothing new writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from boston_lake.lake import layout
from boston_lake.lake.clock import utc_now, utc_now_iso
from boston_lake.lake.duck import connect, sql_literal
from boston_lake.lake.source.datastore import (
    DEFAULT_PAGE_LIMIT,
    DataStoreFetch,
    DataStoreManifest,
    FetchedPage,
    NotAnAppend,
    fetch_records,
    read_datastore_manifest,
)
from boston_lake.lake.source.manifest import JSON_LINES, RawManifest, read_manifest
from boston_lake.lake.source.portal import CkanPortal, Log, PortalResource
from boston_lake.lake.stores import ObjectStore
from boston_lake.lake.tables import LakeTable
from boston_lake.lake.zones.raw import (
    RawIngestError,
    RawPartition,
    RawZone,
    SplitReport,
    _stamp,
    check_years,
    pick_resource,
)
from boston_lake.lake.zones.year_split import OPEN_DATE_PATTERN, JsonLines, JsonLinesPart, YearSplit

SOURCES = ("datastore", "csv")
DEFAULT_FULL_READ_DAYS = 7  # an edit made in the DataStore without a new upload reaches the lake within this many days


class LiveRawZone(RawZone):
    """The raw zone, reading a split table from the DataStore when `source` says so (`datastore`), or by
    default (`source=None`) whenever the portal marks the resource `datastore_active`; else from its CSV."""

    def __init__(
        self,
        store: ObjectStore,
        portal: CkanPortal,
        log: Log,
        source: str | None = None,
        page_limit: int = DEFAULT_PAGE_LIMIT,
        accept_fewer: str = "",
        full_read: bool = False,
        full_read_days: float = DEFAULT_FULL_READ_DAYS,
    ):
        """`accept_fewer`: why a fetch may hold fewer records of a year than the lake holds (empty: refused).
        `full_read`: read every record, not only those past the stored ones, as is done anyway when the last full
        read is `full_read_days` old."""
        super().__init__(store, portal, log)
        self.accept_fewer = accept_fewer
        if source not in (None, *SOURCES):
            raise ValueError(f"source {source!r} is not one of {SOURCES}")
        if full_read_days < 0:
            raise ValueError(f"full_read_days must be 0 or more, not {full_read_days}")
        self.source = source
        self.page_limit = page_limit
        self.full_read = full_read
        self.full_read_days = full_read_days

    def ingest_split(
        self, table: LakeTable, resources: Sequence[PortalResource], years: Sequence[int], valid_years: Sequence[int]
    ) -> tuple[list[RawPartition], SplitReport]:
        check_years(table, years, valid_years)
        prefix = layout.raw_datastore_prefix(table.name)
        previous = read_datastore_manifest(self.store, prefix + layout.MANIFEST)
        resource = pick_resource(resources, table, None, previous.resource_id if previous else None, self.log)
        if not self._reads_datastore(table, resource):
            return super().ingest_split(table, resources, years, valid_years)
        with ExitStack() as stack:
            fetched = self._fetch_records(stack, table, previous, resource, years)
            if isinstance(fetched, list):  # nothing past the stored records, and every year cut from them
                assert previous is not None
                return fetched, SplitReport(previous)
            fetch, reason, full = fetched
            split = self._split_fetch(stack, table, fetch, years, valid_years)
            self._refuse_fewer(table, years, split, fetch)
            manifest = self._source_manifest(prefix, resource, fetch, previous if not full else None)
            if previous and previous.sha256 == manifest.sha256:
                reason = f"the DataStore sent the same records as the stored fetch (same sha256; {reason})"
                manifest = replace(
                    previous,
                    full_read_at=manifest.full_read_at,
                    last_id=manifest.last_id,
                    resource_last_modified=manifest.resource_last_modified,
                    resource_hash=manifest.resource_hash,
                )
                if manifest != previous:  # a full read confirmed the stored pages: the next runs continue them
                    self.store.put_bytes(prefix + layout.MANIFEST, manifest.to_json())
            else:
                if previous is not None and full:
                    reason = f"{reason}: its pages differ from the stored fetch of {previous.fetched_at}"
                self._publish_fetch(prefix, previous, fetch, manifest, full)
            partitions = [
                self._publish_year(table, year, split.parts[year], manifest, resource, reason) for year in years
            ]
            unassigned = split.unassigned
            self._publish_unassigned(
                table, f"{table.name}.jsonl", manifest, unassigned.path, unassigned.rows, split.unassigned_reasons
            )
        return partitions, SplitReport(manifest, split.rows_by_year(), unassigned.rows)

    def _fetch_records(
        self,
        stack: ExitStack,
        table: LakeTable,
        previous: DataStoreManifest | None,
        resource: PortalResource,
        years: Sequence[int],
    ) -> tuple[DataStoreFetch, str, bool] | list[RawPartition]:
        """Every record as one fetch, why it is read, and whether it was read in full; or, when the stored fetch
        is continued and nothing lies past it, the requested years as stored (None of them re-cut)."""
        scratch: dict[int, Path] = {}

        def page_path(number: int) -> Path:
            if number not in scratch:  # a fetch started over writes its pages again
                scratch[number] = stack.enter_context(self.store.scratch_file(f".page{number}.json"))
            return scratch[number]

        why_full = self._why_full_read(previous, resource)
        if why_full is None:
            assert previous is not None and (resume := previous.resume()) is not None
            try:
                new = fetch_records(self.portal, resource.id, page_path, self.log, limit=self.page_limit, after=resume)
            except NotAnAppend as error:
                self.log.warning(f"{table.name}: {error}; reading every record again")
                why_full = str(error)
            else:
                last_full = previous.full_read_at or previous.fetched_at
                if not new.pages:
                    reason = f"no records past the {previous.total} stored (the last full read was at {last_full})"
                    stored = self._stored_years(table, previous, years, reason)
                    if stored is not None:
                        return stored
                else:
                    reason = f"{new.total - previous.total} records past the {previous.total} stored"
                return self._continued(stack, previous, new), reason, False
        fetch = fetch_records(self.portal, resource.id, page_path, self.log, limit=self.page_limit)
        return fetch, why_full if previous is None else f"a full read ({why_full})", True

    def _why_full_read(self, previous: DataStoreManifest | None, resource: PortalResource) -> str | None:
        """Why this run reads every record; None when it may continue the stored fetch."""
        if previous is None:
            return "first fetch"
        if self.full_read:
            return "asked for by the run"
        if previous.resource_id != resource.id:
            return f"the stored fetch is of resource {previous.resource_id}, the portal now serves {resource.id}"
        if previous.resume() is None:
            return "the stored fetch does not record its last _id"
        listed = (resource.last_modified, resource.hash)
        if any(listed) and listed != (previous.resource_last_modified, previous.resource_hash):
            return (
                f"the portal lists a new upload of the resource (last_modified {resource.last_modified}, hash "
                f"{resource.hash}; at the last full read {previous.resource_last_modified}, {previous.resource_hash}): "
                "its records may have been edited in place"
            )
        last_full = datetime.fromisoformat(previous.full_read_at or previous.fetched_at)
        if utc_now() - last_full >= timedelta(days=self.full_read_days):
            return (
                f"the last full read, at {last_full.isoformat()}, is {self.full_read_days:g} days old or more: "
                "records edited in place are seen only by a full read"
            )
        missing = [key for key in previous.page_keys() if not self.store.exists(key)]
        if missing:
            return f"stored pages are missing: {', '.join(missing)}"
        return None

    def _continued(self, stack: ExitStack, previous: DataStoreManifest, new: DataStoreFetch) -> DataStoreFetch:
        """The stored pages followed by the new ones: every record, as one fetch."""
        stored = [
            FetchedPage(
                number=number,
                offset=page["offset"],
                path=stack.enter_context(self.store.reading(page["key"])),
                bytes=page["bytes"],
                sha256=page["sha256"],
                records=page["records"],
            )
            for number, page in enumerate(previous.pages, start=1)
        ]
        return replace(new, url=previous.source_url, pages=stored + new.pages)

    def _stored_years(
        self, table: LakeTable, source: DataStoreManifest, years: Sequence[int], reason: str
    ) -> list[RawPartition] | None:
        """The requested years as stored, when each was cut from this very fetch; else None (cut them again)."""
        current = []
        for year in years:
            manifest = read_manifest(self.store, layout.raw_partition_prefix(table.name, year) + layout.MANIFEST)
            if manifest is None or manifest.source_sha256 != source.sha256 or not self.store.exists(manifest.key):
                return None
            current.append(RawPartition(table.name, year, manifest, changed=False, reason=reason))
        return current

    def _split_fetch(
        self,
        stack: ExitStack,
        table: LakeTable,
        fetch: DataStoreFetch,
        years: Sequence[int],
        valid_years: Sequence[int],
    ) -> YearSplit[JsonLinesPart]:
        """The fetch's records cut into years; every record placed, or nothing is kept."""
        opened_column = table.generations[0].opened_column
        if opened_column not in fetch.fields:
            raise RawIngestError(
                f"{table.name}: {fetch.url} has no {opened_column!r} field to split by; fields are {fetch.fields}"
            )
        split = YearSplit(
            {year: JsonLinesPart(stack.enter_context(self.store.scratch_file(".jsonl"))) for year in years},
            JsonLinesPart(stack.enter_context(self.store.scratch_file(".jsonl"))),
            valid_years,
        )
        with closing(split):  # on error too; and before the parts are published (S3 uploads the files then)
            for year, lines in _json_lines_by_year(table, fetch.pages, opened_column):
                part = split.part_for(year, lines.rows)
                if part is not None:
                    part.write(lines)
        placed = sum(split.counts.values()) + split.unassigned.rows
        if placed != fetch.total:
            raise RawIngestError(
                f"{table.name}: the DataStore's total is {fetch.total} but its pages held {placed} records; "
                "nothing was kept"
            )
        return split

    def _refuse_fewer(
        self, table: LakeTable, years: Sequence[int], split: YearSplit[JsonLinesPart], fetch: DataStoreFetch
    ) -> None:
        """A live source that serves fewer records of a year than the lake holds has lost some (an outage, a
        withdrawal): nothing of the fetch is kept unless the operator accepts it for this run."""
        fewer = {}
        for year in years:
            held = read_manifest(self.store, layout.raw_partition_prefix(table.name, year) + layout.MANIFEST)
            if held is not None and split.counts[year] < held.data_rows:
                fewer[year] = (held.data_rows, split.counts[year])
        if not fewer:
            return
        figures = ", ".join(f"{year}: {held} held, {served} served" for year, (held, served) in sorted(fewer.items()))
        if self.accept_fewer:
            self.log.warning(f"{table.name}: fewer records accepted ({self.accept_fewer}): {figures}")
            return
        raise RawIngestError(
            f"{table.name}: the DataStore at {fetch.url} serves fewer records than the lake holds ({figures}); "
            "nothing was kept; if the city withdrew them, run again with accept_shrink: <the reason>"
        )

    def _reads_datastore(self, table: LakeTable, resource: PortalResource) -> bool:
        if self.source == "datastore" and not resource.datastore_active:
            raise RawIngestError(
                f"{table.name}: BOSTON_LAKE_NEW_SYSTEM_SOURCE=datastore, but the portal does not serve resource "
                f"{resource.id} ({resource.name!r}) through the DataStore (datastore_active is not true); use csv"
            )
        return self.source == "datastore" or (self.source is None and resource.datastore_active)

    def _source_manifest(
        self, prefix: str, resource: PortalResource, fetch: DataStoreFetch, continued: DataStoreManifest | None
    ) -> DataStoreManifest:
        """The manifest of `fetch`; a fetch that `continued` a stored one keeps the time of that one's full read."""
        fetched_at = utc_now_iso()
        return DataStoreManifest(
            resource_id=resource.id,
            resource_name=resource.name,
            source_url=fetch.url,
            total=fetch.total,
            fields=fetch.fields,
            sha256=fetch.sha256,
            size=fetch.bytes,
            fetched_at=fetched_at,
            seconds=round(fetch.seconds, 3),
            pages=[
                {
                    "key": f"{prefix}page-{page.number:05d}.json",
                    "offset": page.offset,
                    "records": page.records,
                    "bytes": page.bytes,
                    "sha256": page.sha256,
                }
                for page in fetch.pages
            ],
            last_id=fetch.last_id,
            full_read_at=(continued.full_read_at or continued.fetched_at) if continued else fetched_at,
            resource_last_modified=continued.resource_last_modified if continued else resource.last_modified,
            resource_hash=continued.resource_hash if continued else resource.hash,
        )

    def _publish_fetch(
        self,
        prefix: str,
        previous: DataStoreManifest | None,
        fetch: DataStoreFetch,
        manifest: DataStoreManifest,
        full: bool,
    ) -> None:
        """Publish the new pages and their manifest; the previous fetch is copied to history first (of a fetch that
        continued it, only its manifest: its pages stay where they are, still current)."""
        if previous:
            history = layout.history_prefix(prefix, _stamp(previous.fetched_at), previous.sha256)
            for key in previous.page_keys() if full else []:
                if self.store.exists(key):
                    self.store.copy(key, history + Path(key).name)
            self.store.put_bytes(history + layout.MANIFEST, previous.to_json())
        kept = 0 if full or previous is None else len(previous.pages)
        for page, key in list(zip(fetch.pages, manifest.page_keys(), strict=True))[kept:]:
            self.store.publish(page.path, key)
        self.store.put_bytes(prefix + layout.MANIFEST, manifest.to_json())
        for stale in set(previous.page_keys() if previous else []) - set(manifest.page_keys()):
            self.store.delete(stale)  # already in history: the new fetch has fewer pages

    def _publish_year(
        self,
        table: LakeTable,
        year: int,
        part: JsonLinesPart,
        source: DataStoreManifest,
        resource: PortalResource,
        reason: str,
    ) -> RawPartition:
        manifest = RawManifest(
            table=table.name,
            year=year,
            key=f"{layout.raw_partition_prefix(table.name, year)}{table.name}_{year}.jsonl",
            bytes=part.size,
            sha256=part.digest.hexdigest(),
            data_rows=part.rows,
            header=source.fields,
            resource_id=resource.id,
            resource_name=resource.name,
            source_url=source.source_url,
            ckan_last_modified=resource.last_modified,
            ckan_hash=resource.hash,
            etag=None,
            http_last_modified=None,
            downloaded_at=source.fetched_at,
            source_key=layout.raw_datastore_prefix(table.name) + layout.MANIFEST,
            source_sha256=source.sha256,
            format=JSON_LINES,
        )
        return self.publish_split_year(manifest, part.path, reason)


def _json_lines_by_year(
    table: LakeTable, pages: Sequence[FetchedPage], opened_column: str
) -> Iterator[tuple[int | None, JsonLines]]:
    """Each page's records, in order, as runs of JSON lines of one open year (None: no parseable open date).

    DuckDB parses each page and writes each record back as compact JSON: the bytes of Python's
    `json.dumps(record, ensure_ascii=False, separators=(",", ":"))` for the DataStore's text, integers and nulls
    (a float's exponent and the hex digits of a rare control character's escape may be spelled otherwise, the same
    value). A page then costs one parse in C++, not a Python object per value, parsed and encoded again."""
    opened = sql_literal("$." + json.dumps(opened_column))
    query = f"""
        SELECT TRY_CAST(nullif(regexp_extract(json_extract_string(record, {opened}),
                                              {sql_literal(OPEN_DATE_PATTERN)}, 1), '') AS INTEGER) AS year,
               record::VARCHAR || chr(10) AS line
        FROM (SELECT unnest(json_extract(content, '$.result.records[*]')) AS record FROM read_text(PAGE))
    """
    # No memory limit: nothing here can spill, and DuckDB holds one page at a time, parsed and written back (about
    # 130 MiB for a page of 10,000 records, 8 MB; 255 MiB for CKAN's largest, 32,000). One thread: a page is one value.
    with closing(connect(memory_limit=None, threads=1)) as connection:
        for page in pages:
            try:
                batch = connection.sql(query.replace("PAGE", sql_literal(str(page.path)))).to_arrow_table()
            except duckdb.Error as error:
                raise RawIngestError(
                    f"{table.name}: DataStore page {page.number} (offset {page.offset}) could not be cut into years: "
                    f"{error}"
                ) from error
            if batch.num_rows != page.records:
                raise RawIngestError(
                    f"{table.name}: DataStore page {page.number} (offset {page.offset}) held {page.records} records "
                    f"when fetched, {batch.num_rows} when cut into years"
                )
            yield from _runs(batch)


def _runs(batch: pa.Table) -> Iterator[tuple[int | None, JsonLines]]:
    """The batch's consecutive lines of one year, each run as one slice of the lines' buffer (no copy)."""
    if not batch.num_rows:
        return
    lines = batch.column("line").combine_chunks()
    _, offsets_buffer, data_buffer = lines.buffers()
    width = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=width)[lines.offset : lines.offset + len(lines) + 1]
    data = memoryview(data_buffer)
    start = 0
    for year, run in groupby(batch.column("year").to_pylist()):
        end = start + sum(1 for _ in run)
        yield year, JsonLines(data[int(offsets[start]) : int(offsets[end])], end - start)
        start = end
