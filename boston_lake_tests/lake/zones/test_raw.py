import json
import logging

import pytest

from boston_lake.lake import layout
from boston_lake.lake.source.manifest import read_manifest
from boston_lake.lake.source.portal import CkanPortal, PortalError
from boston_lake.lake.stores import LocalObjectStore
from boston_lake.lake.tables import LEGACY_REQUESTS, NEW_SYSTEM_REQUESTS
from boston_lake.lake.zones.raw import PartialIngestError, RawIngest, RawIngestError, RawZone
from boston_lake_tests.support.portal import LEGACY_2022_ID, LEGACY_2023_ID, NEW_SYSTEM_ID, status

LEGACY_YEARS = range(2011, 2027)
NEW_YEARS = [2025, 2026]


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "lake")


@pytest.fixture
def zone(portal, store):
    log = logging.getLogger("test")
    return RawZone(store, CkanPortal(portal.url, backoff_seconds=0.01, log=log), log)


def test_a_legacy_year_is_stored_as_downloaded_with_its_manifest(zone, store, portal):
    (partition,) = zone.ingest(LEGACY_REQUESTS, [2022], LEGACY_YEARS)
    manifest = partition.manifest
    assert (
        partition.changed
        and manifest.key == "raw/boston311/legacy_requests/year=2022/legacy_v1_2022-01_qsv_boston311-100.csv"
    )
    assert store.get_bytes(manifest.key) == portal.file_for(LEGACY_2022_ID).read_bytes()
    stored = json.loads(store.get_bytes("raw/boston311/legacy_requests/year=2022/_manifest.json"))
    assert (
        stored["resource_id"] == LEGACY_2022_ID and stored["data_rows"] == 100 and stored["sha256"] == manifest.sha256
    )
    assert stored["etag"] and stored["downloaded_at"] and stored["source_url"].startswith(portal.url)


def test_an_unchanged_source_is_not_asked_for_and_writes_nothing(zone, store, portal):
    zone.ingest(LEGACY_REQUESTS, [2022], LEGACY_YEARS)
    before = {o.key: o.last_modified for o in store.list("raw/")}
    asked = len(portal.downloads())
    (again,) = zone.ingest(LEGACY_REQUESTS, [2022], LEGACY_YEARS)
    assert not again.changed and "metadata (last_modified, hash, size) is that of the stored file" in again.reason
    assert len(portal.downloads()) == asked  # the package metadata said so: no request for the file
    assert {o.key: o.last_modified for o in store.list("raw/")} == before


def without_change_metadata(portal):
    """The portal's package lists no last_modified and no hash (some CKAN resources have neither)."""
    listed = portal.package_show

    def package_show():
        answer = listed()
        for resource in answer["result"]["resources"]:
            resource.update(last_modified=None, hash="")
        return answer

    portal.package_show = package_show


def test_a_source_whose_metadata_cannot_vouch_for_it_is_asked_for_conditionally(zone, store, portal):
    without_change_metadata(portal)
    zone.ingest(LEGACY_REQUESTS, [2022], LEGACY_YEARS)
    (again,) = zone.ingest(LEGACY_REQUESTS, [2022], LEGACY_YEARS)
    assert not again.changed and "304" in again.reason
    assert "If-None-Match" in portal.downloads()[-1].headers


def test_a_listed_size_other_than_the_stored_one_is_asked_for(zone, store, portal):
    zone.ingest(LEGACY_REQUESTS, [2022], LEGACY_YEARS)
    listed = portal.package_show

    def package_show():
        answer = listed()
        for resource in answer["result"]["resources"]:
            resource["size"] = (resource.get("size") or 0) + 1
        return answer

    portal.package_show = package_show
    asked = len(portal.downloads())
    (again,) = zone.ingest(LEGACY_REQUESTS, [2022], LEGACY_YEARS)
    assert not again.changed and len(portal.downloads()) == asked + 1  # asked, and the 304 says it is the same


def test_a_changed_source_replaces_the_file_and_keeps_the_old_one_in_history(zone, store, portal):
    (first,) = zone.ingest(LEGACY_REQUESTS, [2022], LEGACY_YEARS)
    original = store.get_bytes(first.manifest.key)
    lines = original.splitlines(keepends=True)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines[:51]))  # the city republishes with fewer rows
    (second,) = zone.ingest(LEGACY_REQUESTS, [2022], LEGACY_YEARS)
    assert second.changed and second.manifest.data_rows == 50 and second.manifest.sha256 != first.manifest.sha256
    history = [o.key for o in store.list("raw/boston311/legacy_requests/year=2022/_history/")]
    assert len(history) == 2  # the old file and its manifest
    old_file = next(k for k in history if k.endswith(".csv"))
    assert store.get_bytes(old_file) == original


def test_a_year_the_portal_does_not_offer_is_not_stored_nor_failed_and_names_the_years_it_does(zone, portal, store):
    portal.withdraw_legacy_years(2015, 2016)
    ingested = zone.ingest(LEGACY_REQUESTS, [2014, 2015], LEGACY_YEARS)
    assert [partition.year for partition in ingested] == [2014] and list(ingested.unpublished) == [2015]
    unpublished = ingested.unpublished[2015]
    assert str(unpublished).startswith(
        "legacy_requests: the portal offers no resource for 2015; it offers 2011, 2012, 2013, 2014, 2017,"
    )
    assert unpublished.offered == [year for year in LEGACY_YEARS if year not in (2015, 2016)]
    assert not list(store.list(layout.raw_partition_prefix("legacy_requests", 2015)))


def test_one_failing_year_does_not_stop_the_others_and_is_named(zone, store, portal):
    portal.faults.extend([None, status(403)])  # 2013 downloads, 2015 is refused
    with pytest.raises(RawIngestError, match=r"1 of 3 years failed \(2 succeeded.*\n\s+2015:"):
        zone.ingest(LEGACY_REQUESTS, [2013, 2015, 2023], LEGACY_YEARS)
    assert read_manifest(store, layout.raw_partition_prefix("legacy_requests", 2023) + layout.MANIFEST)


def test_the_pinned_resource_id_survives_a_rename(zone, portal):
    zone.ingest(LEGACY_REQUESTS, [2023], LEGACY_YEARS)
    for resource in portal.package["resources"]:
        if resource["id"] == LEGACY_2023_ID:
            resource["name"] = "311 Service Requests - 2023 (archived)"
    (again,) = zone.ingest(LEGACY_REQUESTS, [2023], LEGACY_YEARS)
    assert again.manifest.resource_id == LEGACY_2023_ID and not again.changed


def test_new_system_is_split_by_open_year_without_losing_or_doubling_a_case(zone, store, portal):
    partitions = zone.ingest(NEW_SYSTEM_REQUESTS, NEW_YEARS, NEW_YEARS)
    source_lines = portal.file_for(NEW_SYSTEM_ID).read_bytes().splitlines(keepends=True)
    header, rows = source_lines[0], source_lines[1:]
    parts = {p.year: store.get_bytes(p.manifest.key).splitlines(keepends=True) for p in partitions}
    assert all(part[0] == header for part in parts.values())
    assert sorted(parts[2025][1:] + parts[2026][1:]) == sorted(rows)
    assert all(line.split(b",")[1].startswith(b"2025") for line in parts[2025][1:])
    assert all(line.split(b",")[1].startswith(b"2026") for line in parts[2026][1:])
    assert {p.year: p.manifest.data_rows for p in partitions} == {
        2025: len(parts[2025]) - 1,
        2026: len(parts[2026]) - 1,
    }
    source = read_manifest(store, layout.raw_source_prefix("new_system_requests") + layout.MANIFEST)
    assert store.get_bytes(source.key) == portal.file_for(NEW_SYSTEM_ID).read_bytes()
    assert all(p.manifest.source_sha256 == source.sha256 for p in partitions)


def test_new_system_rows_outside_the_partitions_are_kept_apart_and_counted(zone, store, portal, caplog):
    data = portal.file_for(NEW_SYSTEM_ID).read_bytes()
    header, first, rest = data.split(b"\r\n", 2)
    stray = first.replace(b"2025-08-01", b"2024-12-31", 1)
    undated = b"BCS-99999999,," + first.split(b",", 2)[2]
    portal.replace_file(NEW_SYSTEM_ID, b"\r\n".join([header, stray, undated, first, rest]))
    caplog.set_level(logging.WARNING)
    partitions = zone.ingest(NEW_SYSTEM_REQUESTS, NEW_YEARS, NEW_YEARS)
    unassigned = store.get_bytes(
        "raw/boston311/new_system_requests/_unassigned/new_system_2025-08_to_2026-02_soham-bhagwat_api_extract.csv"
    )
    assert unassigned.splitlines()[1:] == [stray, undated]
    summary = json.loads(store.get_bytes("raw/boston311/new_system_requests/_unassigned/_manifest.json"))
    assert summary["rows"] == 2 and summary["reasons"] == {
        "open year 2024 is outside 2025-2026": 1,
        "no parseable open date": 1,
    }
    assert sum(p.manifest.data_rows for p in partitions) == len(data.splitlines()) - 1  # every original case placed
    assert any("2 rows have an open date outside" in m for m in caplog.messages)


def test_new_system_unchanged_source_is_one_conditional_request(zone, store, portal):
    zone.ingest(NEW_SYSTEM_REQUESTS, NEW_YEARS, NEW_YEARS)
    before = {o.key: o.last_modified for o in store.list("raw/")}
    again = zone.ingest(NEW_SYSTEM_REQUESTS, NEW_YEARS, NEW_YEARS)
    assert [p.changed for p in again] == [False, False]
    assert {o.key: o.last_modified for o in store.list("raw/")} == before


def test_new_system_year_first_requested_later_is_cut_from_the_stored_source(zone, store):
    zone.ingest(NEW_SYSTEM_REQUESTS, [2025], NEW_YEARS)
    (later,) = zone.ingest(NEW_SYSTEM_REQUESTS, [2026], NEW_YEARS)
    assert later.changed and later.manifest.data_rows > 0


def test_new_system_changed_source_changes_only_the_years_whose_cases_changed(zone, store, portal):
    zone.ingest(NEW_SYSTEM_REQUESTS, NEW_YEARS, NEW_YEARS)
    data = portal.file_for(NEW_SYSTEM_ID).read_bytes()
    header, *rows = data.split(b"\r\n")
    kept = [header] + [row for row in rows if b",2026-02-" not in row[:40]]  # February 2026 withdrawn
    portal.replace_file(NEW_SYSTEM_ID, b"\r\n".join(kept))
    by_year = {p.year: p for p in zone.ingest(NEW_SYSTEM_REQUESTS, NEW_YEARS, NEW_YEARS)}
    assert not by_year[2025].changed and by_year[2026].changed


def test_an_html_page_in_place_of_the_csv_stores_nothing(zone, store, portal):
    from boston_lake_tests.support.portal import html_page

    portal.faults.append(html_page())
    with pytest.raises(RawIngestError, match="HTML page"):
        zone.ingest(LEGACY_REQUESTS, [2022], LEGACY_YEARS)
    assert list(store.list("raw/")) == []


def test_a_portal_without_the_dataset_is_a_clear_error(store, tmp_path):
    log = logging.getLogger("test")
    zone = RawZone(store, CkanPortal("http://127.0.0.1:9", max_attempts=1), log)
    with pytest.raises(PortalError, match="package_show"):
        zone.ingest(LEGACY_REQUESTS, [2022], LEGACY_YEARS)


def test_a_run_whose_every_year_failed_says_none_is_stored():
    assert str(PartialIngestError("legacy_requests", RawIngest(), {2012: "answered 404"})) == (
        "legacy_requests: 1 of 1 years failed (none is stored):\n  2012: answered 404"
    )
