"""Odd bytes in the source file: every row ends in bronze or in the rejects file, with its reason."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.zones.bronze import BronzeError
from boston_lake_tests.faults.conftest import Lake
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.support.portal import LEGACY_2022_ID

FIRST_ID = 101004143000  # the first row of the 2022 sample; its `reason` is "Employee & General Comments"


def serve(lake: Lake, data: bytes) -> bytes:
    lake.portal.replace_file(LEGACY_2022_ID, data)
    return data


def lines(lake: Lake) -> tuple[bytes, list[bytes]]:
    header, *rows = lake.served().split(b"\n")
    return header, [row for row in rows if row]


def bronze_value(lake: Lake, column: str, case_id: int = FIRST_ID) -> object:
    table = pq.read_table(lake.bronze_key(), columns=["case_enquiry_id", column]).to_pylist()
    return next(row[column] for row in table if row["case_enquiry_id"] == case_id)


def rejects(lake: Lake) -> list[dict[str, str]]:
    data = lake.store.get_bytes(layout.bronze_rejects_key("legacy_requests", 2022)).decode()
    csv.field_size_limit(1 << 30)
    return list(csv.DictReader(io.StringIO(data)))


@fault("input", "NUL byte inside a field", "kept as it is in the value")
def test_nul_bytes(lake: Lake) -> None:
    header, rows = lines(lake)
    rows[0] = rows[0].replace(b"General Comments", b"General\x00Comments", 1)
    source = serve(lake, b"\n".join([header, *rows]) + b"\n")
    lake.ingest()
    assert bronze_value(lake, "reason") == "Employee & General\x00Comments"
    assert lake.rows_lost(source) == 0


@fault("input", "CRLF line endings", "read like LF; no `\\r` in any value")
def test_crlf(lake: Lake) -> None:
    header, rows = lines(lake)
    source = serve(lake, b"\r\n".join([header, *rows]) + b"\r\n")
    partition = lake.ingest()
    assert partition.rejects == 0 and bronze_value(lake, "source") == "Constituent Call"
    assert lake.rows_lost(source) == 0


@fault("input", "UTF-8 byte-order mark", "ignored: the header still matches its generation")
def test_bom(lake: Lake) -> None:
    source = serve(lake, b"\xef\xbb\xbf" + lake.served())
    partition = lake.ingest()
    assert partition.generation == "legacy_v1" and partition.schema.names[0] == "case_enquiry_id"
    assert lake.rows_lost(source) == 0


@fault("input", "Latin-1 bytes in a UTF-8 file", "the row is kept, decoded as Windows-1252, and counted")
def test_latin1(lake: Lake) -> None:
    header, rows = lines(lake)
    rows[0] = rows[0].replace(b"General Comments", b"G\xe9n\xe9ral Comments", 1)
    source = serve(lake, b"\n".join([header, *rows]) + b"\n")
    partition = lake.ingest()
    assert partition.encoding_repaired_rows == 1 and bronze_value(lake, "reason") == "Employee & Général Comments"
    assert lake.rows_lost(source) == 0


@fault("input", "the header repeated inside the file", "that line is rejected with its reason; every data row kept")
def test_header_repeated_mid_file(lake: Lake) -> None:
    header, rows = lines(lake)
    source = serve(lake, b"\n".join([header, *rows[:50], header, *rows[50:]]) + b"\n")
    partition = lake.ingest()
    assert partition.rows == 100 and partition.rejects == 1
    assert rejects(lake)[0]["raw_line"] == header.decode()
    assert lake.rows_lost(source) == 0


@fault("input", "a column named twice in the header", "refused, naming the column; the stored year is kept")
def test_duplicate_column(lake: Lake) -> None:
    stored = lake.served()
    lake.ingest()
    header, rows = lines(lake)
    serve(lake, b"\n".join([header + b",case_status", *(row + b",x" for row in rows)]) + b"\n")
    with pytest.raises(BronzeError, match=r"year=2022/.*\.csv: .*duplicate columns \['case_status'\]"):
        lake.ingest()
    assert lake.rows_lost(stored) == 0


@fault(
    "input",
    "a 3 MB field (over DuckDB's 2 MB line limit)",
    "the row is rejected with its line number; `_rejects.csv` keeps its first 10,000 characters, raw the whole line",
)
def test_over_long_field(lake: Lake) -> None:
    header, rows = lines(lake)
    rows[0] = rows[0].replace(b"General Comments", b"General Comments " + b"x" * 3_000_000, 1)
    source = serve(lake, b"\n".join([header, *rows]) + b"\n")
    partition = lake.ingest()
    assert partition.rows == 99 and partition.rejects == 1
    (rejected,) = rejects(lake)
    assert rejected["error_type"] == "LINE SIZE OVER MAXIMUM" and rejected["line"] == "2"
    assert rejected["raw_line"] == rows[0].decode()[:10_000]
    assert lake.rows_lost(source) == 0
