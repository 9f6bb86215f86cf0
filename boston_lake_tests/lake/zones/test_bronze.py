import csv
import io
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.stores import STAGING_DIR, LocalObjectStore
from boston_lake.lake.tables import LEGACY_REQUESTS, NEW_SYSTEM_REQUESTS
from boston_lake.lake.zones.bronze import BronzeError, BronzeZone, convert_csv
from boston_lake.sample_portal.server import DATA_DIR

V1 = DATA_DIR / "legacy_v1_2022-01_qsv_boston311-100.csv"
V2 = DATA_DIR / "legacy_v2_2013_bu-spark_filtered_every4th.csv"
NEW = DATA_DIR / "new_system_2025-08_to_2026-02_soham-bhagwat_api_extract.csv"


def rows_of(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_v1_sample_is_typed_with_codes_as_strings_and_blanks_as_null(tmp_path):
    out = tmp_path / "v1.parquet"
    conversion = convert_csv(V1, out, LEGACY_REQUESTS)
    assert conversion.rows == 100 and conversion.rejects == 0 and conversion.generation.name == "legacy_v1"
    schema = pq.read_schema(out)
    assert schema.field("case_enquiry_id").type == pa.int64()
    assert schema.field("open_dt").type == pa.timestamp("us")
    assert schema.field("latitude").type == pa.float64()
    assert schema.field("location_zipcode").type == schema.field("ward").type == pa.string()
    assert schema.names == next(csv.reader(V1.open()))  # the file's own columns, in its order
    rows = rows_of(out)
    by_id = {row["case_enquiry_id"]: row for row in rows}
    assert by_id[101004130437]["location_zipcode"] == "02113"  # leading zero kept
    assert by_id[101004130437]["precinct"] == "0303"
    assert by_id[101004143000]["closure_reason"] is None  # a single space in the file
    assert by_id[101004143000]["fire_district"] is None
    assert pq.ParquetFile(out).metadata.row_group(0).column(0).compression == "ZSTD"


def test_v2_sample_has_its_own_columns(tmp_path):
    conversion = convert_csv(V2, tmp_path / "v2.parquet", LEGACY_REQUESTS)
    assert conversion.rows == 700 and conversion.generation.name == "legacy_v2"
    names = pq.read_schema(tmp_path / "v2.parquet").names
    assert "sla_target_dt" in names and "geom_4326" in names and "target_dt" not in names


def test_new_system_timestamps_with_utc_offset_and_any_fraction(tmp_path):
    out = tmp_path / "new.parquet"
    conversion = convert_csv(NEW, out, NEW_SYSTEM_REQUESTS)
    assert conversion.rows == 5473 and conversion.rejects == 0
    assert pq.read_schema(out).field("open_date").type == pa.timestamp("us", tz="UTC")
    rows = {row["case_id"]: row for row in pq.read_table(out, columns=["case_id", "open_date", "zip_code"]).to_pylist()}
    assert rows["BCS-00065327"]["open_date"].isoformat() == "2025-08-01T06:35:06.539000+00:00"  # 3 digits
    assert rows["BCS-00105447"]["open_date"].isoformat() == "2025-10-22T09:30:00.427176+00:00"  # 6 digits
    assert rows["BCS-00104292"]["open_date"].isoformat() == "2025-10-19T15:17:24+00:00"  # none
    assert rows["BCS-00065327"]["zip_code"] == "02121"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def v1_lines(count: int) -> list[str]:
    return V1.read_text().splitlines()[: count + 1]


def test_malformed_rows_go_to_rejects_with_line_and_reason(tmp_path):
    header, good1, good2, good3 = v1_lines(3)
    broken_type = good2.replace("101004130437", "not-a-number", 1)
    too_many = good3 + ",extra"
    source = write(tmp_path / "bad.csv", "\n".join([header, good1, broken_type, too_many, good3]) + "\n")
    conversion = convert_csv(
        source,
        tmp_path / "bad.parquet",
        LEGACY_REQUESTS,
        rejects_destination=tmp_path / "r.csv",
        source_label="raw/x.csv",
    )
    assert (conversion.rows, conversion.rejects) == (2, 2)
    rejects = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [(r["line"], r["error_type"]) for r in rejects] == [("3", "CAST"), ("4", "TOO MANY COLUMNS")]
    assert "case_enquiry_id" in rejects[0]["reason"] and "not-a-number" in rejects[0]["raw_line"]
    assert rejects[1]["raw_line"] == too_many and rejects[1]["raw_key"] == "raw/x.csv"


def test_a_line_with_several_errors_is_one_reject_naming_them_all(tmp_path):
    header, row = v1_lines(1)
    fields = next(csv.reader([row]))
    fields[0], fields[26] = "x", "north"  # case_enquiry_id and latitude
    source = write(tmp_path / "two.csv", header + "\n" + ",".join(f'"{f}"' for f in fields) + "\n")
    conversion = convert_csv(source, tmp_path / "two.parquet", LEGACY_REQUESTS, rejects_destination=tmp_path / "r.csv")
    assert conversion.rejects == 1
    (reject,) = csv.DictReader((tmp_path / "r.csv").open())
    assert reject["column"] == "case_enquiry_id; latitude" and reject["error_type"] == "CAST; CAST"


def test_unknown_header_is_an_error_listing_columns(tmp_path):
    header, row = v1_lines(1)
    source = write(tmp_path / "odd.csv", header.replace("ontime", "on_time_flag") + "\n" + row + "\n")
    with pytest.raises(ValueError, match=r"unexpected columns \['on_time_flag'\], missing columns \['ontime'\]"):
        convert_csv(source, tmp_path / "odd.parquet", LEGACY_REQUESTS)


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        convert_csv(write(tmp_path / "empty.csv", b""), tmp_path / "e.parquet", LEGACY_REQUESTS)


def test_header_only_file_makes_an_empty_typed_partition(tmp_path):
    (header,) = v1_lines(0)
    conversion = convert_csv(write(tmp_path / "h.csv", header + "\n"), tmp_path / "h.parquet", LEGACY_REQUESTS)
    assert conversion.rows == 0 and pq.read_schema(tmp_path / "h.parquet").field("open_dt").type == pa.timestamp("us")


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path):
    source = write(tmp_path / "bom.csv", b"\xef\xbb\xbf" + V1.read_bytes())
    conversion = convert_csv(source, tmp_path / "bom.parquet", LEGACY_REQUESTS)
    assert conversion.rows == 100 and pq.read_schema(tmp_path / "bom.parquet").names[0] == "case_enquiry_id"


def test_latin1_bytes_are_repaired_when_raw_flags_them_and_rejected_otherwise(tmp_path):
    header, row = v1_lines(1)
    latin = row.replace("Mayor's 24 Hour Hotline", "Mayor's 24 Hour Hotline caf\xe9").encode("latin-1")
    source = write(tmp_path / "latin.csv", header.encode() + b"\n" + latin + b"\n")
    repaired = convert_csv(source, tmp_path / "fixed.parquet", LEGACY_REQUESTS, repair=True)
    assert repaired.rows == 1 and repaired.encoding_repaired_rows == 1
    assert "caf\u00e9" in rows_of(tmp_path / "fixed.parquet")[0]["subject"]
    unrepaired = convert_csv(source, tmp_path / "raw.parquet", LEGACY_REQUESTS, rejects_destination=tmp_path / "r.csv")
    assert (unrepaired.rows, unrepaired.rejects) == (0, 1)
    assert next(csv.DictReader((tmp_path / "r.csv").open()))["error_type"] == "INVALID ENCODING"


def test_duckdb_running_out_of_memory_is_a_clear_error(tmp_path):
    from boston_lake.lake.zones.bronze import ConverterSettings

    with pytest.raises(BronzeError, match="(?s)ran out of its 1MB memory limit.*raise the converter memory limit"):
        convert_csv(V2, tmp_path / "oom.parquet", LEGACY_REQUESTS, settings=ConverterSettings(memory_limit="1MB"))


# -- the zone: raw manifest in, partition out ---------------------------------------------------------


@pytest.fixture
def lake(tmp_path):
    return LocalObjectStore(tmp_path / "lake")


def put_raw(store: LocalObjectStore, year: int, data: bytes, name: str = "f.csv") -> None:
    """A raw partition as the raw zone leaves it: the file and a manifest that profiles it."""
    from boston_lake.lake.source.csvscan import profile_file

    prefix = layout.raw_partition_prefix("legacy_requests", year)
    with store.writing(prefix + name) as staged:
        staged.write_bytes(data)
        profile = profile_file(staged)
    import hashlib

    manifest = {
        "table": "legacy_requests",
        "year": year,
        "key": prefix + name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "data_rows": profile.data_rows,
        "header": profile.header,
        "resource_id": "r",
        "resource_name": "n",
        "source_url": "http://127.0.0.1/x",
        "ckan_last_modified": None,
        "ckan_hash": None,
        "etag": None,
        "http_last_modified": None,
        "downloaded_at": "2026-01-01T00:00:00+00:00",
        "invalid_utf8_rows": profile.invalid_utf8_rows,
    }
    store.put_bytes(prefix + layout.MANIFEST, json.dumps(manifest).encode())


def zone(store):
    return BronzeZone(store, store, logging.getLogger("test"))


def test_build_writes_one_partition_file_and_its_rejects_and_manifest_outside_the_table(lake):
    header, *rows = v1_lines(5)
    rows[1] = rows[1].replace(",", ";", 3)  # too few columns
    put_raw(lake, 2022, ("\n".join([header, *rows]) + "\n").encode())
    partition = zone(lake).build(LEGACY_REQUESTS, 2022)
    assert (partition.rows, partition.rejects, partition.changed) == (4, 1, True)
    assert [o.key for o in lake.list("bronze/")] == ["bronze/boston311/legacy_requests/year=2022/part-00000.parquet"]
    keys = sorted(o.key for o in lake.list("_meta/"))
    assert keys == [
        "_meta/bronze/boston311/legacy_requests/year=2022/_manifest.json",
        "_meta/bronze/boston311/legacy_requests/year=2022/_rejects.csv",
    ]
    rejects = list(csv.DictReader(io.StringIO(lake.get_bytes(keys[1]).decode())))
    assert rejects[0]["raw_key"].endswith("year=2022/f.csv") and "MISSING COLUMNS" in rejects[0]["error_type"]
    assert rejects[0]["raw_line"] == rows[1]


def test_rebuild_from_the_same_raw_file_is_skipped_and_force_rebuilds(lake):
    put_raw(lake, 2022, V1.read_bytes())
    first = zone(lake).build(LEGACY_REQUESTS, 2022)
    mtime = lake.path(first.key).stat().st_mtime_ns
    again = zone(lake).build(LEGACY_REQUESTS, 2022)
    assert not again.changed and again.rows == 100 and lake.path(first.key).stat().st_mtime_ns == mtime
    forced = zone(lake).build(LEGACY_REQUESTS, 2022, force=True)
    assert forced.changed


def test_a_clean_rebuild_removes_stale_rejects(lake):
    header, *rows = v1_lines(3)
    put_raw(lake, 2022, ("\n".join([header, rows[0] + ",extra", *rows[1:]]) + "\n").encode())
    assert zone(lake).build(LEGACY_REQUESTS, 2022).rejects == 1
    put_raw(lake, 2022, ("\n".join([header, *rows]) + "\n").encode())
    assert zone(lake).build(LEGACY_REQUESTS, 2022).rejects == 0
    assert not lake.exists(layout.bronze_rejects_key("legacy_requests", 2022))


def test_missing_raw_partition_says_what_to_materialize(lake):
    with pytest.raises(BronzeError, match="materialize raw/legacy_requests for 2019 first"):
        zone(lake).build(LEGACY_REQUESTS, 2019)


def test_bad_raw_file_error_names_the_file(lake):
    put_raw(lake, 2022, b"just,some,columns\n1,2,3\n", name="odd.csv")
    with pytest.raises(BronzeError, match=r"legacy_requests 2022: .*year=2022/odd.csv: header matches no known"):
        zone(lake).build(LEGACY_REQUESTS, 2022)


CONVERT_IN_CHILD = """
import logging, sys
from boston_lake.lake.zones.bronze import BronzeZone
from boston_lake.lake.stores import LocalObjectStore
from boston_lake.lake.tables import LEGACY_REQUESTS
store = LocalObjectStore(sys.argv[1])
BronzeZone(store, store, logging.getLogger("child")).build(LEGACY_REQUESTS, 2022)
"""


@pytest.mark.slow
def test_a_write_killed_midway_leaves_the_previous_partition_whole(lake, tmp_path):
    put_raw(lake, 2022, V1.read_bytes())
    before = zone(lake).build(LEGACY_REQUESTS, 2022)
    header, *rows = V1.read_text().splitlines()
    big = "\n".join([header, *(rows * 4000)]) + "\n"  # 400k rows, ~190 MB: converting takes seconds
    put_raw(lake, 2022, big.encode())
    child = subprocess.Popen([sys.executable, "-c", CONVERT_IN_CHILD, str(lake.root)])
    staging = lake.root / STAGING_DIR
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        p.suffix == ".parquet" and p.stat().st_size > 0 for p in staging.rglob("*")
    ):
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the conversion finished before it could be killed"
    assert pq.ParquetFile(lake.path(before.key)).metadata.num_rows == 100
    assert pq.read_table(lake.path(before.key)).num_rows == 100
    assert [o.key for o in lake.list("bronze/")] == [before.key]  # debris stays in .staging
    assert any(staging.iterdir())


def test_a_year_is_known_by_its_content_and_an_old_manifest_is_verified_by_reading_it(lake):
    import os

    from boston_lake.lake.zones.bronze import partition_damage

    put_raw(lake, 2022, V1.read_bytes())
    first = zone(lake).build(LEGACY_REQUESTS, 2022)
    data, manifest = lake.path(first.key), lake.path(layout.bronze_manifest_key("legacy_requests", 2022))
    recorded = json.loads(manifest.read_bytes())
    assert len(recorded["sha256"]) == 64
    os.utime(data, ns=(0, 0))  # the same bytes with another time, as a copy or a restore leaves them
    assert partition_damage(lake, "legacy_requests", 2022) is None
    assert not zone(lake).build(LEGACY_REQUESTS, 2022).changed

    del recorded["sha256"]  # a manifest written before the content was recorded
    manifest.write_text(json.dumps(recorded))
    assert partition_damage(lake, "legacy_requests", 2022) is None  # read whole, and it reads
    assert not zone(lake).build(LEGACY_REQUESTS, 2022).changed
    broken = bytearray(data.read_bytes())
    broken[4:68] = bytes(64)  # same size, footer intact, the first page unreadable
    data.write_bytes(bytes(broken))
    assert "is not readable Parquet" in (partition_damage(lake, "legacy_requests", 2022) or "")


def test_a_damaged_year_is_repaired_without_being_held_to_its_damaged_rows(lake):
    put_raw(lake, 2022, V1.read_bytes())
    first = zone(lake).build(LEGACY_REQUESTS, 2022)
    table = pq.read_table(lake.path(first.key))
    doubled = pa.concat_tables([table, table]).replace_schema_metadata(table.schema.metadata)
    pq.write_table(doubled, lake.path(first.key))  # 200 rows where the build published 100
    repaired = zone(lake).build(LEGACY_REQUESTS, 2022)  # 200 -> 100 is a repair, not a shrink to refuse
    assert repaired.changed and repaired.reason.startswith("repaired: ") and repaired.rows == 100


def lay_out_before_meta(lake: LocalObjectStore, year: int) -> None:
    """The year's bookkeeping back beside its data, where a lake laid out before `_meta/` keeps it."""
    for key in layout.bronze_bookkeeping_keys("legacy_requests", year):
        if lake.exists(key):
            lake.copy(key, layout.before_meta(key))
            lake.delete(key)


def test_a_lake_laid_out_before_meta_is_read_as_it_is_and_one_normal_build_moves_every_year_without_rebuilding(
    lake,
):
    from boston_lake.lake.zones.status import lake_status

    header, *rows = v1_lines(5)
    put_raw(lake, 2022, ("\n".join([header, rows[0] + ",extra", *rows[1:]]) + "\n").encode())
    put_raw(lake, 2023, V1.read_bytes())
    built = [zone(lake).build(LEGACY_REQUESTS, year) for year in (2022, 2023)]
    bookkeeping = {
        key: lake.get_bytes(key)
        for year in (2022, 2023)
        for key in layout.bronze_bookkeeping_keys("legacy_requests", year)
        if lake.exists(key)
    }
    assert len(bookkeeping) == 3  # two manifests, the rejects of 2022
    for year in (2022, 2023):
        lay_out_before_meta(lake, year)
    data_written = [lake.path(partition.key).stat().st_mtime_ns for partition in built]

    statuses = lake_status(lake, lake, (LEGACY_REQUESTS,))
    assert [(s.bronze_rows, s.rejects, s.bronze_current, s.damage) for s in statuses] == [
        (4, 1, True, None),
        (100, 0, True, None),
    ]

    again = zone(lake).build(LEGACY_REQUESTS, 2022)
    assert (again.changed, again.rows, again.rejects) == (False, 4, 1)
    assert [lake.path(partition.key).stat().st_mtime_ns for partition in built] == data_written
    assert [o.key for o in lake.list("bronze/")] == [partition.key for partition in built]
    assert {key: lake.get_bytes(key) for key in bookkeeping} == bookkeeping


def test_a_forced_build_moves_the_old_layout_too_and_keeps_a_differing_old_file_in_meta_history(lake):
    put_raw(lake, 2022, V1.read_bytes())
    built = zone(lake).build(LEGACY_REQUESTS, 2022)
    manifest = layout.bronze_manifest_key("legacy_requests", 2022)
    lake.put_bytes(layout.before_meta(manifest), b'{"written": "by an older version"}')

    assert zone(lake).build(LEGACY_REQUESTS, 2022, force=True).changed
    assert [o.key for o in lake.list("bronze/")] == [built.key]
    (kept,) = [o.key for o in lake.list(manifest.rsplit("/", 1)[0] + "/_history/")]
    assert kept.endswith("/" + layout.MANIFEST) and lake.get_bytes(kept) == b'{"written": "by an older version"}'
    assert json.loads(lake.get_bytes(manifest))["rows"] == 100


def test_a_year_another_run_holds_is_left_for_that_run_to_move(lake):
    for year in (2022, 2023):
        put_raw(lake, year, V1.read_bytes())
        zone(lake).build(LEGACY_REQUESTS, year)
        lay_out_before_meta(lake, year)
    beside_2023 = layout.before_meta(layout.bronze_manifest_key("legacy_requests", 2023))
    with lake.workspace("bronze.legacy_requests.2023"):  # the claim a build of 2023 holds
        zone(lake).build(LEGACY_REQUESTS, 2022)
        assert lake.exists(beside_2023)
    assert not zone(lake).build(LEGACY_REQUESTS, 2023).changed
    assert not lake.exists(beside_2023) and lake.exists(layout.bronze_manifest_key("legacy_requests", 2023))
