"""The source keeps its identity by content: a resource renamed or re-stamped with the same bytes is re-pinned
once, so conditional requests (304) resume; and the raw history of a year never loses a version to a clock."""

from __future__ import annotations

import logging
import os

import pytest

from boston_lake.lake.source.manifest import read_manifest
from boston_lake.lake.source.portal import CkanPortal
from boston_lake.lake.stores import LocalObjectStore
from boston_lake.lake.tables import LEGACY_REQUESTS, NEW_SYSTEM_REQUESTS
from boston_lake.lake.zones import raw
from boston_lake.lake.zones.raw import RawZone
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.support.portal import LEGACY_2022_ID, NEW_SYSTEM_ID

YEARS = range(2011, 2027)
MANIFEST = "raw/boston311/legacy_requests/year=2022/_manifest.json"
RENAMED_ID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "lake")


@pytest.fixture
def zone(portal, store):
    log = logging.getLogger("test_source_identity")
    return RawZone(store, CkanPortal(portal.url, backoff_seconds=0.01, log=log), log)


def ingest_2022(zone):
    (partition,) = zone.ingest(LEGACY_REQUESTS, [2022], YEARS)
    return partition


@fault(
    "source",
    "the portal renames a resource id, same bytes",
    "re-pinned once to the new id and URL; the next run finds the stored file's metadata and asks nothing",
)
def test_a_renamed_resource_with_the_same_bytes_is_repinned_once_and_then_not_asked_for(zone, store, portal):
    first = ingest_2022(zone)
    portal.rename_resource(LEGACY_2022_ID, RENAMED_ID)
    again = ingest_2022(zone)
    assert not again.changed and "re-pinned" in again.reason
    manifest = read_manifest(store, MANIFEST)
    assert manifest.resource_id == RENAMED_ID and RENAMED_ID in manifest.source_url
    assert manifest.sha256 == first.manifest.sha256 and manifest.downloaded_at == first.manifest.downloaded_at
    asked = len(portal.downloads())
    third = ingest_2022(zone)
    assert not third.changed and "metadata" in third.reason and len(portal.downloads()) == asked


@fault(
    "source",
    "the portal bumps last_modified, same bytes",
    "the manifest's validators are refreshed once; the next run finds the stored file's metadata and asks nothing",
)
def test_a_metadata_only_change_refreshes_the_validators_once_and_then_is_not_asked_for(zone, store, portal):
    first = ingest_2022(zone)
    path = portal.file_for(LEGACY_2022_ID)
    later = path.stat().st_mtime + 86_400
    os.utime(path, (later, later))  # the portal's last_modified and Last-Modified move; the bytes do not
    again = ingest_2022(zone)
    assert not again.changed and "re-pinned" in again.reason
    manifest = read_manifest(store, MANIFEST)
    assert manifest.ckan_last_modified != first.manifest.ckan_last_modified
    assert manifest.http_last_modified != first.manifest.http_last_modified
    asked = len(portal.downloads())
    third = ingest_2022(zone)
    assert not third.changed and "metadata" in third.reason and len(portal.downloads()) == asked


@fault(
    "source",
    "the clock repeats a time across three versions of a year",
    "every replaced version keeps its own history folder (named by time and content); none is overwritten",
)
def test_history_keeps_every_version_when_the_clock_repeats(zone, store, portal, monkeypatch):
    monkeypatch.setattr(raw, "utc_now_iso", lambda: "2026-01-01T00:00:00+00:00")  # a clock stepped back
    original = portal.file_for(LEGACY_2022_ID).read_bytes()
    lines = original.splitlines(keepends=True)
    versions = [original, b"".join(lines[:61]), b"".join(lines[:41])]
    for version in versions:
        portal.replace_file(LEGACY_2022_ID, version)
        assert ingest_2022(zone).changed
    history = sorted(o.key for o in store.list("raw/boston311/legacy_requests/year=2022/_history/"))
    kept = [store.get_bytes(key) for key in history if key.endswith(".csv")]
    assert sorted(kept) == sorted(versions[:2]), history  # both replaced versions, each whole


@fault(
    "input",
    "a re-split places the rows that an earlier split could not (the city fixed their dates)",
    "`_unassigned/` holds nothing for the current source any more; the earlier rows are kept in its `_history/`",
)
def test_unassigned_rows_placed_by_a_later_split_leave_unassigned_for_history(zone, store, portal):
    unassigned = "raw/boston311/new_system_requests/_unassigned/"
    data = portal.file_for(NEW_SYSTEM_ID).read_bytes()
    header, first, rest = data.split(b"\r\n", 2)
    portal.replace_file(NEW_SYSTEM_ID, b"\r\n".join([header, first.replace(b"2025-08-01", b"2024-12-31", 1), rest]))
    zone.ingest(NEW_SYSTEM_REQUESTS, [2025, 2026], [2025, 2026])
    assert [o.key for o in store.list(unassigned) if "/_history/" not in o.key] != []
    portal.replace_file(NEW_SYSTEM_ID, data)  # the city fixes the date: every row has its year
    zone.ingest(NEW_SYSTEM_REQUESTS, [2025, 2026], [2025, 2026])
    assert [o.key for o in store.list(unassigned) if "/_history/" not in o.key] == []
    kept = [store.get_bytes(o.key) for o in store.list(unassigned + "_history/") if o.key.endswith(".csv")]
    assert len(kept) == 1 and b"2024-12-31" in kept[0]
