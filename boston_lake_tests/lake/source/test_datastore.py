"""NEW SYSTEM through CKAN's DataStore API, over real HTTP: paging, raw pages and years, bad answers, bronze."""

import csv
import hashlib
import io
import json
import logging
from urllib.parse import parse_qs, urlparse

import pyarrow.parquet as pq
import pytest
import requests

from boston_lake.lake import layout
from boston_lake.lake.aws.s3 import S3ObjectStore
from boston_lake.lake.settings import Settings, SettingsError
from boston_lake.lake.source.datastore import DataStoreError, fetch_records
from boston_lake.lake.source.manifest import read_manifest
from boston_lake.lake.source.portal import CkanPortal
from boston_lake.lake.stores import LocalObjectStore
from boston_lake.lake.tables import NEW_SYSTEM_REQUESTS
from boston_lake.lake.zones.bronze import BronzeZone
from boston_lake.lake.zones.raw import RawIngestError
from boston_lake.lake.zones.raw_datastore import LiveRawZone
from boston_lake_tests.support.portal import (
    NEW_SYSTEM_ID,
    ckan_failure,
    html_instead_of_json,
    ids_shifted,
    json_cut_short,
    send_body,
    total_becomes,
)

YEARS = [2025, 2026]
PAGE_ROWS = 1000  # the test portal's rows_max: the sample's 5,473 records come in 6 pages
SOURCE = "raw/boston311/new_system_requests/_source/datastore/"


@pytest.fixture
def log():
    return logging.getLogger("test")


@pytest.fixture
def paged_portal(portal):
    portal.datastore_rows_max = PAGE_ROWS
    return portal


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "lake")


def live_zone(portal, store, log, source=None, **options):
    return LiveRawZone(store, CkanPortal(portal.url, backoff_seconds=0.01, log=log), log, source, **options)


@pytest.fixture
def zone(paged_portal, store, log):
    return live_zone(paged_portal, store, log)


@pytest.fixture
def full_zone(paged_portal, store, log):
    """Reads every record on every run, as the periodic full read does."""
    return live_zone(paged_portal, store, log, full_read=True)


def sample_rows(portal) -> int:
    return len(portal.file_for(NEW_SYSTEM_ID).read_bytes().splitlines()) - 1


def publish(portal, data: bytes, in_place: bool) -> None:
    """The city's change: a new upload of the file (the package lists it), or records changed in the DataStore
    under the listing of the upload it was loaded from (`in_place`)."""
    (portal.edit_records_in_place if in_place else portal.replace_file)(NEW_SYSTEM_ID, data)


def close_the_2026_cases(portal, in_place: bool = False) -> None:
    """The city closes every open case of 2026: the records change, 2025's do not."""
    lines = portal.file_for(NEW_SYSTEM_ID).read_bytes().split(b"\r\n")
    changed = [line.replace(b",In progress,", b",Closed,") if b",2026-" in line[:20] else line for line in lines]
    assert changed != lines
    publish(portal, b"\r\n".join(changed), in_place)


def append_2026_cases(portal, count: int, in_place: bool = False) -> None:
    """The city opens `count` new cases: records past the stored ones, in 2026."""
    data = portal.file_for(NEW_SYSTEM_ID).read_bytes()
    template = next(line for line in data.split(b"\r\n") if b",2026-" in line[:20])
    new = [template.replace(template[: template.index(b",")], b"BCS-9%07d" % number, 1) for number in range(count)]
    publish(portal, data.rstrip(b"\r\n") + b"\r\n" + b"\r\n".join(new) + b"\r\n", in_place)


def offsets_asked(portal) -> list[int]:
    return [int(parse_qs(urlparse(seen.path).query)["offset"][0]) for seen in portal.datastore_requests()]


def snapshot(store) -> dict[str, bytes]:
    return {o.key: store.get_bytes(o.key) for o in store.list("raw/")}


def test_the_sample_portal_answers_in_ckans_shape(paged_portal):
    answer = requests.get(
        f"{paged_portal.url}/api/3/action/datastore_search",
        params={"resource_id": NEW_SYSTEM_ID, "limit": 50_000, "offset": 1000},
        timeout=10,
    ).json()
    assert answer["success"] is True and answer["help"].endswith("help_show?name=datastore_search")
    result = answer["result"]
    assert result["resource_id"] == NEW_SYSTEM_ID and result["total"] == sample_rows(paged_portal)
    assert result["limit"] == PAGE_ROWS and result["offset"] == 1000  # a larger limit is cut to rows_max
    assert [r["_id"] for r in result["records"]] == list(range(1001, 2001))
    assert result["fields"][0] == {"id": "_id", "type": "int"} and result["fields"][1]["id"] == "case_id"
    assert result["_links"]["next"].endswith("offset=2000") and "offset" not in result["_links"]["start"]
    missing = requests.get(
        f"{paged_portal.url}/api/3/action/datastore_search", params={"resource_id": "nope"}, timeout=10
    )
    assert missing.status_code == 404 and missing.json()["success"] is False


def test_a_full_fetch_pages_through_every_record_and_keeps_each_page_as_sent(paged_portal, tmp_path, log, caplog):
    caplog.set_level(logging.INFO)
    fetch = fetch_records(
        CkanPortal(paged_portal.url), NEW_SYSTEM_ID, lambda n: tmp_path / f"page{n}.json", log, limit=32_000
    )
    total = sample_rows(paged_portal)
    assert fetch.total == total and len(fetch.pages) == 6 and sum(p.records for p in fetch.pages) == total
    assert [p.offset for p in fetch.pages] == [0, 1000, 2000, 3000, 4000, 5000]
    assert fetch.fields[:3] == ["_id", "case_id", "open_date"]
    again = requests.get(fetch.url.replace("offset=0", "offset=1000"), timeout=10).content
    assert fetch.pages[1].path.read_bytes() == again  # byte for byte what the portal sends for that page
    ids = [r["_id"] for page in fetch.pages for r in json.loads(page.path.read_bytes())["result"]["records"]]
    assert ids == list(range(1, total + 1))
    progress = [m for m in caplog.messages if "records (" in m]
    assert progress[0].startswith(f"DataStore {NEW_SYSTEM_ID}: page 1, 1,000 of {total:,} records (18%)")
    assert len(progress) == 6 and f"page 6, {total:,} of {total:,} records (100%)" in progress[-1]


def test_raw_keeps_the_pages_and_one_json_lines_file_per_year(zone, store, paged_portal):
    partitions = zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    source = json.loads(store.get_bytes(SOURCE + "_manifest.json"))
    total = sample_rows(paged_portal)
    assert source["resource_id"] == NEW_SYSTEM_ID and source["total"] == total
    assert len(source["pages"]) == 6 and len(source["sha256"]) == 64 and source["fetched_at"]
    assert [store.exists(page["key"]) for page in source["pages"]] == [True] * 6
    assert all(p.changed and p.manifest.format == "jsonl" for p in partitions)
    assert sum(p.manifest.data_rows for p in partitions) == total  # rows stored = total
    seen = []
    for partition in partitions:
        lines = store.get_bytes(partition.manifest.key).decode().splitlines()
        records = [json.loads(line) for line in lines]
        assert len(records) == partition.manifest.data_rows
        assert all(r["open_date"].startswith(str(partition.year)) for r in records)
        seen += [r["_id"] for r in records]
    assert sorted(seen) == list(range(1, total + 1))  # every record in exactly one year


def test_every_file_raw_uploads_holds_the_bytes_its_manifest_counted(paged_portal, aws_client, aws_buckets, log):
    # S3 reads a file when it is published (a local store renames it): a part must be closed, its buffer written,
    # before. A few records with no open date, scattered, go to the unassigned part as short writes.
    store = S3ObjectStore(aws_client("s3"), aws_buckets.lake)
    zone = live_zone(paged_portal, store, log)
    lines = paged_portal.file_for(NEW_SYSTEM_ID).read_bytes().split(b"\r\n")
    undated = [1, 2000, 4000]
    for row in undated:
        fields = lines[row].split(b",")
        assert fields[1][:2] == b"20", fields  # the open date, the second column
        lines[row] = b",".join([fields[0], b"", *fields[2:]])
    publish(paged_portal, b"\r\n".join(lines), in_place=False)

    partitions = zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)

    for partition in partitions:
        data = store.get_bytes(partition.manifest.key)
        assert (len(data), hashlib.sha256(data).hexdigest()) == (partition.manifest.bytes, partition.manifest.sha256)
    prefix = layout.raw_unassigned_prefix(NEW_SYSTEM_REQUESTS.name)
    unassigned = store.get_bytes(prefix + f"{NEW_SYSTEM_REQUESTS.name}.jsonl").decode().splitlines()
    assert len(unassigned) == len(undated) == json.loads(store.get_bytes(prefix + layout.MANIFEST))["rows"]
    assert all(json.loads(line)["open_date"] in (None, "") for line in unassigned)


def test_a_refresh_that_finds_nothing_new_writes_nothing(zone, store, paged_portal):
    zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    before = {o.key: o.last_modified for o in store.list("raw/")}
    asked = len(paged_portal.datastore_requests())
    again = zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    assert [p.changed for p in again] == [False, False]
    assert again[0].reason.startswith(f"no records past the {sample_rows(paged_portal)} stored")
    assert offsets_asked(paged_portal)[asked:] == [sample_rows(paged_portal)]  # one request, past the stored
    assert {o.key: o.last_modified for o in store.list("raw/")} == before


def test_a_refresh_reads_only_the_new_records_and_keeps_the_stored_pages(zone, store, paged_portal):
    zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    stored = sample_rows(paged_portal)
    old_pages = {o.key: store.get_bytes(o.key) for o in store.list(SOURCE) if "/page-" in o.key}
    asked = len(paged_portal.datastore_requests())
    append_2026_cases(paged_portal, 1500, in_place=True)  # upserted: the listing names the same upload
    by_year = {p.year: p for p in zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)}
    assert offsets_asked(paged_portal)[asked:] == [stored, stored + 1000]  # only the records past the stored
    assert by_year[2026].changed and not by_year[2025].changed
    source = json.loads(store.get_bytes(SOURCE + "_manifest.json"))
    assert source["total"] == stored + 1500 and source["last_id"] == stored + 1500
    assert [page["offset"] for page in source["pages"]] == [0, 1000, 2000, 3000, 4000, 5000, stored, stored + 1000]
    assert {key: store.get_bytes(key) for key in old_pages} == old_pages  # the stored pages stay as they were
    history = [o.key for o in store.list(SOURCE + "_history/")]
    assert [key.rsplit("/", 1)[-1] for key in history] == ["_manifest.json"]  # its pages are still current
    ids = [json.loads(line)["_id"] for p in by_year.values() for line in store.get_bytes(p.manifest.key).splitlines()]
    assert sorted(ids) == list(range(1, stored + 1501))  # every record in exactly one year
    assert sum(p.manifest.data_rows for p in by_year.values()) == stored + 1500


def test_a_record_edited_in_place_waits_for_the_periodic_full_read(paged_portal, store, log):
    live_zone(paged_portal, store, log).ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    close_the_2026_cases(paged_portal, in_place=True)  # the same _ids, other values, the same listing
    continued = {p.year: p for p in live_zone(paged_portal, store, log).ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)}
    assert not continued[2026].changed
    weekly = live_zone(paged_portal, store, log, full_read_days=0)  # the last full read is old enough
    by_year = {p.year: p for p in weekly.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)}
    assert by_year[2026].changed and not by_year[2025].changed
    assert "a full read (the last full read, at " in by_year[2025].reason and "days old" in by_year[2025].reason


def test_a_new_upload_listed_by_the_portal_is_read_in_full_the_same_day(zone, paged_portal, store):
    zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    close_the_2026_cases(paged_portal)  # a new upload: the package lists its last_modified and hash
    (listed,) = [r for r in paged_portal.package_show()["result"]["resources"] if r["id"] == NEW_SYSTEM_ID]
    by_year = {p.year: p for p in zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)}
    assert by_year[2026].changed and not by_year[2025].changed  # the edit in place reached the lake at once
    assert f"a full read (the portal lists a new upload of the resource (last_modified {listed['last_modified']}" in (
        by_year[2025].reason  # the year left as it was says why it was read again
    )
    source = json.loads(store.get_bytes(SOURCE + "_manifest.json"))
    assert (source["resource_last_modified"], source["resource_hash"]) == (listed["last_modified"], listed["hash"])
    again = zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)  # the same upload: continued, one request
    assert [p.changed for p in again] == [False, False] and again[0].reason.startswith("no records past the")


def test_a_full_read_that_finds_the_same_records_notes_only_its_time(zone, full_zone, store):
    zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    first = json.loads(store.get_bytes(SOURCE + "_manifest.json"))
    before = {
        o.key: store.get_bytes(o.key) for o in store.list("raw/") if not o.key.endswith(SOURCE + "_manifest.json")
    }
    again = full_zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    assert [p.changed for p in again] == [False, False] and "same sha256" in again[0].reason
    after = json.loads(store.get_bytes(SOURCE + "_manifest.json"))
    assert after == {**first, "full_read_at": after["full_read_at"]} and after["full_read_at"] >= first["full_read_at"]
    assert {o.key: store.get_bytes(o.key) for o in store.list("raw/") if o.key in before} == before


def test_fewer_records_than_stored_are_read_in_full_and_refused(zone, store, paged_portal, caplog):
    zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    before = snapshot(store)
    lines = paged_portal.file_for(NEW_SYSTEM_ID).read_bytes().split(b"\r\n")
    publish(paged_portal, b"\r\n".join(lines[:1] + lines[2:]), in_place=True)  # the first case withdrawn
    with pytest.raises(RawIngestError, match="serves fewer records than the lake holds"):
        zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    assert any("fewer than the 5473 stored; reading every record again" in m for m in caplog.messages)
    assert snapshot(store) == before


def test_changed_records_change_only_their_year_and_the_old_fetch_goes_to_history(full_zone, store, paged_portal):
    full_zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    old_pages = {o.key: store.get_bytes(o.key) for o in store.list(SOURCE) if "/page-" in o.key}
    close_the_2026_cases(paged_portal)
    by_year = {p.year: p for p in full_zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)}
    assert by_year[2026].changed and not by_year[2025].changed
    history = {o.key.rsplit("/", 1)[-1]: o.key for o in store.list(SOURCE + "_history/")}
    assert len(history) == len(old_pages) + 1  # every old page and the old manifest
    for key, data in old_pages.items():
        if key.rsplit("/", 1)[-1] in history:
            assert store.get_bytes(history[key.rsplit("/", 1)[-1]]) == data


@pytest.mark.parametrize(
    "faults,message",
    [
        ([None, ckan_failure("Internal Server Error")], r"page 2 \(offset 1000.*success: false.*Internal Server"),
        ([None, None, html_instead_of_json()], r"page 3 \(offset 2000.*HTML page"),
        ([json_cut_short(5000)], r"page 1 \(offset 0.*malformed or cut-short JSON.*5000 bytes"),
        ([None, ids_shifted(-1)], r"page 2 \(offset 1000.*repeats _id 1000"),
        ([None, None, None, ids_shifted(5)], r"page 4 \(offset 3000.*_id 3006 after 3000: 5 records skipped"),
        ([None, total_becomes(6000), None, total_becomes(6000)], r"total changed.*again after 1 fresh start"),
    ],
    ids=["success_false", "html", "truncated_json", "repeated_ids", "skipped_ids", "total_keeps_changing"],
)
def test_a_bad_page_fails_naming_it_and_publishes_nothing(full_zone, store, paged_portal, faults, message):
    full_zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    before = snapshot(store)
    close_the_2026_cases(paged_portal)
    paged_portal.datastore_faults.extend(faults)
    with pytest.raises(DataStoreError, match=message):
        full_zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    assert snapshot(store) == before  # the previous fetch and every previous year stay whole


def test_a_total_that_changes_once_starts_the_fetch_over(zone, paged_portal, caplog):
    paged_portal.datastore_faults.extend([None, None, total_becomes(9999)])
    partitions = zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    assert sum(p.manifest.data_rows for p in partitions) == sample_rows(paged_portal)
    assert any("total changed from 5473 to 9999" in m and "starting the fetch over" in m for m in caplog.messages)
    # Pages 1-3, page 4 (asked for while page 3 was checked), then the 6 pages again.
    assert len(paged_portal.datastore_requests()) == 4 + 6


def test_a_page_cut_to_a_lower_maximum_is_followed_from_where_it_ended(zone, paged_portal):
    def lower_maximum(handler, status, payload):  # the portal's rows_max lowered while paging
        result = payload["result"]
        result["records"], result["limit"] = result["records"][:400], 400
        return False

    paged_portal.datastore_faults.extend([None, lower_maximum])
    partitions = zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    assert sum(p.manifest.data_rows for p in partitions) == sample_rows(paged_portal)
    # Page 3 was asked for at 2000 while page 2 was checked; page 2 ended at 1400, so page 3 is asked for there.
    assert offsets_asked(paged_portal)[:5] == [0, 1000, 2000, 1400, 2400]


def test_a_busy_portal_is_retried(zone, paged_portal):
    def busy(handler, status, payload):
        send_body(handler, 503, "text/plain", b"busy")
        return True

    paged_portal.datastore_faults.extend([None, busy])
    partitions = zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    assert sum(p.manifest.data_rows for p in partitions) == sample_rows(paged_portal)


def convert_both_ways(portal, tmp_path, log):
    """Bronze of the same records, once through the CSV file and once through the DataStore."""
    tables = {}
    for source in ("csv", "datastore"):
        store = LocalObjectStore(tmp_path / source)
        live_zone(portal, store, log, source).ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
        bronze = BronzeZone(store, store, log)
        tables[source] = {
            year: pq.read_table(store.path(bronze.build(NEW_SYSTEM_REQUESTS, year).key)).sort_by("case_id")
            for year in YEARS
        }
    return tables


def test_csv_and_datastore_give_the_same_bronze_rows(paged_portal, tmp_path, log):
    tables = convert_both_ways(paged_portal, tmp_path, log)
    for year in YEARS:
        from_csv, from_json = tables["csv"][year], tables["datastore"][year]
        assert from_json.schema == from_csv.schema.remove_metadata().with_metadata(from_json.schema.metadata)
        assert from_json.num_rows == from_csv.num_rows > 0
        assert from_json.to_pylist() == from_csv.to_pylist()
    assert "_id" not in tables["datastore"][2025].column_names


def test_a_value_that_does_not_fit_its_type_is_rejected_with_its_id(zone, store, paged_portal, log):
    data = paged_portal.file_for(NEW_SYSTEM_ID).read_bytes()
    paged_portal.replace_file(NEW_SYSTEM_ID, data.replace(b",-71.072802,", b",west of here,", 1))
    (partition,) = zone.ingest(NEW_SYSTEM_REQUESTS, [2025], YEARS)
    built = BronzeZone(store, store, log).build(NEW_SYSTEM_REQUESTS, 2025)
    assert built.rejects == 1 and built.rows + built.rejects == partition.manifest.data_rows
    (reject,) = csv.DictReader(
        io.StringIO(store.get_bytes(layout.bronze_rejects_key("new_system_requests", 2025)).decode())
    )
    assert reject["_id"] == "1" and reject["column"] == "longitude"
    assert reject["reason"] == "longitude: west of here is not a DOUBLE"
    assert json.loads(reject["raw_record"])["case_id"] == "BCS-00065327"


def test_forcing_the_datastore_on_a_resource_it_does_not_serve_is_an_error(paged_portal, store, log):
    for resource in paged_portal.package["resources"]:
        if resource["id"] == NEW_SYSTEM_ID:
            resource["datastore_active"] = False
    with pytest.raises(RawIngestError, match="BOSTON_LAKE_NEW_SYSTEM_SOURCE=datastore.*datastore_active"):
        live_zone(paged_portal, store, log, "datastore").ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    (automatic,) = live_zone(paged_portal, store, log).ingest(NEW_SYSTEM_REQUESTS, [2025], YEARS)
    assert automatic.manifest.format == "csv"  # not datastore_active: the CSV file
    assert paged_portal.datastore_requests() == []


def test_the_setting_chooses_the_source():
    assert Settings.from_env({}).new_system_source is None
    assert Settings.from_env({"BOSTON_LAKE_NEW_SYSTEM_SOURCE": "csv"}).new_system_source == "csv"
    with pytest.raises(
        SettingsError,
        match="BOSTON_LAKE_NEW_SYSTEM_SOURCE='json' is not a NEW SYSTEM source; use one of datastore, csv",
    ):
        Settings.from_env({"BOSTON_LAKE_NEW_SYSTEM_SOURCE": "json"})


def test_the_year_manifest_points_at_the_fetch(zone, store):
    zone.ingest(NEW_SYSTEM_REQUESTS, YEARS, YEARS)
    year = read_manifest(store, layout.raw_partition_prefix("new_system_requests", 2025) + layout.MANIFEST)
    source = json.loads(store.get_bytes(SOURCE + "_manifest.json"))
    assert year.source_key == SOURCE + "_manifest.json" and year.source_sha256 == source["sha256"]
    assert year.header == source["fields"] and year.resource_id == NEW_SYSTEM_ID


def test_the_sample_portal_serves_an_edited_file_at_once_though_it_pages_from_an_index(paged_portal):
    def page(offset: int) -> dict:
        params = {"resource_id": NEW_SYSTEM_ID, "offset": offset, "limit": 1000}
        url = f"{paged_portal.url}/api/3/action/datastore_search"
        return requests.get(url, params=params, timeout=10).json()["result"]

    first = page(0)
    append_2026_cases(paged_portal, 3)  # a new version of the file, parsed again on the next page asked for
    edited = page(5000)
    assert edited["total"] == first["total"] + 3
    assert [r["case_id"] for r in edited["records"][-3:]] == ["BCS-90000000", "BCS-90000001", "BCS-90000002"]
