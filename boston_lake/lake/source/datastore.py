"""Reading a resource's live records through CKAN's DataStore API (`datastore_search`), page by page.

A `datastore_active` resource is also served as JSON records, and on data.boston.gov the DataStore is
fresher than the resource's CSV file. Pages are asked for sorted by `_id`, 10,000 records each (CKAN cuts a
larger `limit` down to its `ckan.datastore.search.rows_max` and says so in `result.limit`), and each page is
kept exactly as received, on disk, so memory holds one page at a time (raw_datastore.py cuts them into years
from there).

Every page is checked before anything is kept, and every failure names the page:
- the answer must be CKAN's JSON with `success: true` (not an error, an HTML page or cut-short JSON);
- `total` must not change while paging: a changed total means the DataStore is being reloaded, so the
  fetch starts over, and fails if it changes again;
- `_id`s must continue the previous page without a repeat or a gap. `_id` is the DataStore's serial
  number, and the records of a resource loaded from its source file (as NEW SYSTEM is:
  `datastore_contains_all_records_of_source_file`) are numbered without gaps, so a page that repeats or
  skips `_id`s has repeated or skipped records;
- the records received must add up to `total`.

A fetch can also continue a stored one (`Resume`): it asks only for the records past those stored, and the
first of them must carry the `_id` after the stored last one. That sees every appended record and every
deletion (the total falls below what is stored: `NotAnAppend`, and the caller reads everything again), but not
a record edited in place under its old `_id`: the DataStore has no modification time to ask by, so only a full
read sees those (see `raw_datastore.py` for when one is made).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from boston_lake.lake.source.portal import ActionResponse, CkanPortal, Log, PortalError
from boston_lake.lake.stores import ObjectNotFound, ObjectStore, StoreError

SEARCH_ACTION = "datastore_search"
ROW_ID = "_id"
# Records asked for per page: a page is checked, kept and cut into years whole, as Python objects, so this
# bounds the run's memory (a page of 32,000 records, CKAN's default maximum, peaked at 412 MiB in an ingest run,
# 10,000 at 264 MiB). A portal with a lower `ckan.datastore.search.rows_max` answers with its own.
DEFAULT_PAGE_LIMIT = 10_000
MANIFEST_VERSION = 1


class DataStoreError(PortalError):
    """A DataStore page was not what CKAN promises; the message names the resource and the page."""


class _TotalChanged(DataStoreError):
    """The DataStore's record count changed between pages: it is being reloaded."""


class NotAnAppend(DataStoreError):
    """The DataStore no longer continues the stored fetch (fewer records, other fields or `_id`s): only a full
    read can say what changed."""


@dataclass(frozen=True)
class Resume:
    """Where a fetch that continues a stored one starts: after its `total` records, the last with `_id` `last_id`,
    its pages numbered from `first_page`."""

    total: int
    last_id: int
    fields: list[str]
    first_page: int


@dataclass(frozen=True)
class FetchedPage:
    number: int
    offset: int
    path: Path  # the page's bytes exactly as the portal sent them
    bytes: int
    sha256: str
    records: int


@dataclass(frozen=True)
class DataStoreFetch:
    """Every record of a resource, as the pages that carried them."""

    resource_id: str
    url: str  # the first page's URL
    total: int
    fields: list[str]  # field ids in the portal's order, `_id` first
    pages: list[FetchedPage]
    seconds: float
    last_id: int | None = None  # the `_id` of the last record, None when there is none

    @property
    def sha256(self) -> str:
        """One digest for the whole fetch: the pages' digests in order."""
        return hashlib.sha256("\n".join(page.sha256 for page in self.pages).encode()).hexdigest()

    @property
    def bytes(self) -> int:
        return sum(page.bytes for page in self.pages)


def fetch_records(
    portal: CkanPortal,
    resource_id: str,
    page_path: Callable[[int], Path],
    log: Log,
    *,
    limit: int = DEFAULT_PAGE_LIMIT,
    restarts: int = 1,
    after: Resume | None = None,
) -> DataStoreFetch:
    """Page through every record of `resource_id` (or, `after` a stored fetch, through the records past it),
    writing page N to `page_path(N)`.

    A `total` that changes while paging starts the fetch over, up to `restarts` times; then it fails."""
    for attempt in range(restarts + 1):
        try:
            return _fetch_once(portal, resource_id, page_path, log, limit, after)
        except _TotalChanged as change:
            if attempt == restarts:
                raise DataStoreError(
                    f"{change}; it changed again after {restarts} fresh start(s): the DataStore is being "
                    "reloaded, nothing was kept; try again later"
                ) from change
            log.warning(f"{change}; starting the fetch over")
    raise AssertionError("unreachable")


def _fetch_once(
    portal: CkanPortal,
    resource_id: str,
    page_path: Callable[[int], Path],
    log: Log,
    limit: int,
    after: Resume | None,
) -> DataStoreFetch:
    started = time.monotonic()
    pages: list[FetchedPage] = []
    total: int | None = None
    fields: list[str] = []
    first_url = ""
    last_id = after.last_id if after else None
    offset = after.total if after else 0
    logged_tenths = -1
    step = limit  # records a full page holds: `limit`, or the portal's maximum when lower
    # One page is asked for while the previous is checked and kept: the portal prepares the next answer (a query of
    # its database) while this process parses the last one. One request at a time, in offset order, as before.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="datastore-page") as asker:

        def ask(at: int) -> tuple[int, Future[ActionResponse]]:
            params = {"resource_id": resource_id, "limit": limit, "offset": at, "sort": ROW_ID}
            return at, asker.submit(portal.action, SEARCH_ACTION, params)

        pending = ask(offset)
        while total is None or offset < total:
            number = len(pages) + (after.first_page if after else 1)
            if pending[0] != offset:  # the page before held fewer records than a full one: ask where it ended
                pending[1].exception()  # waited for (one request at a time), not used
                pending = ask(offset)
            response = pending[1].result()
            where = f"DataStore resource {resource_id}, page {number} (offset {offset}, {response.url})"
            # Only the first answer is parsed before the next page is asked for: it says how many records there
            # are and how many a page holds.
            first: dict[str, Any] | None = None
            if total is None:
                first = _result(response, where)
                total, fields, first_url = first["total"], [f["id"] for f in first["fields"]], response.url
                if ROW_ID not in fields:
                    raise DataStoreError(f"{where}: the fields {fields} have no {ROW_ID!r}; cannot page in order")
                if after is not None:
                    _check_continues(after, total, fields, where)
                    if total == after.total:
                        break  # nothing past the stored records
                step = min(limit, int(first.get("limit") or limit))
            if offset + step < total:  # the next page, unless this one is the last
                pending = ask(offset + step)
            result = first if first is not None else _result(response, where)
            if result["total"] != total:
                raise _TotalChanged(f"{where}: total changed from {total} to {result['total']} while paging")
            records = result["records"]
            expected = min(int(result.get("limit") or limit), total - offset)
            try:
                last_id = _check_ids(records, last_id, where)
            except DataStoreError as error:
                if after is not None and offset == after.total:  # the first record past the stored ones
                    raise NotAnAppend(
                        f"{error}: the stored records are no longer a prefix of the DataStore's"
                    ) from error
                raise
            if len(records) != expected:
                raise DataStoreError(
                    f"{where}: {len(records)} records where {expected} were due (limit {result.get('limit')}, "
                    f"total {total}); the DataStore is skipping records"
                )
            path = page_path(number)
            path.write_bytes(response.body)
            pages.append(
                FetchedPage(
                    number=number,
                    offset=offset,
                    path=path,
                    bytes=len(response.body),
                    sha256=hashlib.sha256(response.body).hexdigest(),
                    records=len(records),
                )
            )
            offset += len(records)
            # Progress at each tenth of the records: every line is an event a Dagster run stores (~30 ms each).
            tenths = 10 * offset // total if total else 10
            if tenths > logged_tenths:
                logged_tenths = tenths
                log.info(
                    f"DataStore {resource_id}: page {number}, {offset:,} of {total:,} records "
                    f"({100 * offset / total if total else 100:.0f}%) in {time.monotonic() - started:.1f}s"
                )
    assert total is not None, "the loop asks for one page at least"
    return DataStoreFetch(resource_id, first_url, total, fields, pages, time.monotonic() - started, last_id)


def _check_continues(after: Resume, total: int, fields: list[str], where: str) -> None:
    if total < after.total:
        raise NotAnAppend(f"{where}: the DataStore holds {total} records, fewer than the {after.total} stored")
    if fields != after.fields:
        raise NotAnAppend(f"{where}: the fields changed from {after.fields} to {fields}")


def _result(response: ActionResponse, where: str) -> dict[str, Any]:
    """The `result` of a page, after checking that it is CKAN's JSON and a success."""
    body = response.body
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:120]
    if "html" in response.content_type.lower() or head.lower().startswith((b"<!doctype", b"<html", b"<?xml")):
        raise DataStoreError(
            f"{where}: answered {response.status} with an HTML page ({response.content_type or 'no content type'}) "
            f"instead of CKAN's JSON; it begins {head!r}"
        )
    try:
        payload = json.loads(body)
    except ValueError as error:
        raise DataStoreError(
            f"{where}: answered {response.status} with malformed or cut-short JSON ({error}; "
            f"{len(body)} bytes received, ending {body[-60:]!r})"
        ) from error
    if not isinstance(payload, dict) or payload.get("success") is not True:
        reported = payload.get("error") if isinstance(payload, dict) else payload
        raise DataStoreError(f"{where}: answered {response.status} with success: false: {reported!r:.300}")
    result = payload.get("result")
    if not (
        isinstance(result, dict)
        and isinstance(result.get("records"), list)
        and isinstance(result.get("fields"), list)
        and isinstance(result.get("total"), int)
    ):
        raise DataStoreError(f"{where}: the result lacks records, fields or an integer total: {str(result):.300}")
    return result


def _check_ids(records: list[Any], last_id: int | None, where: str) -> int | None:
    """The last `_id` of the page, after checking that the page continues `last_id` without repeat or gap."""
    for position, record in enumerate(records):
        row_id = record.get(ROW_ID) if isinstance(record, dict) else None
        if not isinstance(row_id, int):
            raise DataStoreError(f"{where}: record {position} has no integer {ROW_ID}: {str(record):.200}")
        if last_id is not None and row_id <= last_id:
            raise DataStoreError(f"{where}: record {position} repeats {ROW_ID} {row_id} (already at {last_id})")
        if last_id is not None and row_id > last_id + 1:
            raise DataStoreError(
                f"{where}: record {position} has {ROW_ID} {row_id} after {last_id}: "
                f"{row_id - last_id - 1} records skipped"
            )
        last_id = row_id
    return last_id


@dataclass(frozen=True)
class DataStoreManifest:
    """What a fetch kept under the table's `_source/datastore/`: the pages, and what they add up to."""

    resource_id: str
    resource_name: str
    source_url: str
    total: int
    fields: list[str]
    sha256: str  # the fetch's digest (see DataStoreFetch.sha256)
    size: int  # bytes of all pages
    fetched_at: str
    seconds: float
    pages: list[dict[str, Any]] = field(default_factory=list)  # key, offset, records, bytes, sha256 per page
    version: int = MANIFEST_VERSION
    last_id: int | None = None  # the `_id` of the last record: where a fetch that continues this one starts
    full_read_at: str | None = None  # when every record was last read (a continued fetch carries it over)
    # The resource's last_modified and hash in the portal's package at that full read: CKAN changes them with each
    # upload, and a new upload can edit records in place, which only a full read sees.
    resource_last_modified: str | None = None
    resource_hash: str | None = None

    def resume(self) -> Resume | None:
        """Where a fetch continuing this one starts; None when this manifest does not say (an older one)."""
        if self.last_id is None:
            return None
        return Resume(self.total, self.last_id, self.fields, first_page=len(self.pages) + 1)

    def page_keys(self) -> list[str]:
        return [page["key"] for page in self.pages]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()


def read_datastore_manifest(store: ObjectStore, key: str) -> DataStoreManifest | None:
    try:
        data = store.get_bytes(key)
    except ObjectNotFound:
        return None
    try:
        return DataStoreManifest(**json.loads(data))
    except (ValueError, TypeError) as error:
        raise StoreError(f"DataStore manifest {store.uri(key)} is unreadable: {error}") from error
