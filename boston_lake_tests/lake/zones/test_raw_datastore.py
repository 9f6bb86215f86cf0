"""Cutting the DataStore's pages into years with DuckDB: the same lines, in the same order, and the same years as
the records parsed and encoded one by one in Python."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from boston_lake.lake.source.datastore import FetchedPage
from boston_lake.lake.tables import NEW_SYSTEM_REQUESTS
from boston_lake.lake.zones.raw import RawIngestError
from boston_lake.lake.zones.raw_datastore import _json_lines_by_year
from boston_lake.lake.zones.year_split import open_year

RECORDS = [
    {"_id": 1, "open_date": "2024-01-05 08:00:00+00", "note": 'a "quote", a \\ back\nslash\tand tab'},
    {"_id": 2, "open_date": "2024-02-01 00:00:00+00", "note": "é ünïcödé 😀 \u2028 </script> & / 'x'"},
    {"_id": 3, "open_date": None, "note": None},
    {"_id": 4, "open_date": "  2019-12-31 23:59:59+00", "note": ""},
    {"_id": 5, "open_date": "2024-3-1", "note": "a date that is not one"},
    {"_id": 6, "open_date": 2024, "note": "a number"},
    {"_id": 7, "note": "no open date field at all"},
    {"_id": 8, "open_date": "2024-12-31 23:59:59+00", "note": ["a", {"nested": True}]},
    {"_id": 9, "open_date": "2025-01-01 00:00:00+00", "note": "\u0001 a control character"},
]


def _page(tmp_path: Path, number: int, records: list[dict]) -> FetchedPage:
    path = tmp_path / f"page{number}.json"
    body = json.dumps({"help": "…", "success": True, "result": {"records": records, "total": len(RECORDS)}})
    path.write_bytes(body.encode())  # as the sample portal sends it: json.dumps' spacing, non-ASCII escaped
    data = path.read_bytes()
    return FetchedPage(number, 0, path, len(data), hashlib.sha256(data).hexdigest(), len(records))


def test_pages_become_runs_of_json_lines_of_one_year_as_python_would_write_them(tmp_path: Path):
    pages = [_page(tmp_path, 1, RECORDS[:5]), _page(tmp_path, 2, []), _page(tmp_path, 3, RECORDS[5:])]

    runs = [
        (year, bytes(lines.data), lines.rows)
        for year, lines in _json_lines_by_year(NEW_SYSTEM_REQUESTS, pages, "open_date")
    ]

    expected = [
        (open_year(str(record.get("open_date") or "")), json.dumps(record, ensure_ascii=False, separators=(",", ":")))
        for record in RECORDS
    ]
    # Runs of consecutive records of one year, never across a page: [1, 2], [3], [4], [5] | [6, 7], [8], [9].
    assert [year for year, _, _ in runs] == [2024, None, 2019, None, None, 2024, 2025]
    assert [rows for _, _, rows in runs] == [2, 1, 1, 1, 2, 1, 1]
    lines = b"".join(data for _, data, _ in runs).decode().split("\n")[:-1]  # not splitlines: U+2028 is no line end
    assert lines == [line for _, line in expected]
    years = [year for year, _, rows in runs for _ in range(rows)]
    assert years == [year for year, _ in expected]


def test_a_page_that_cannot_be_cut_fails_naming_it(tmp_path: Path):
    page = _page(tmp_path, 4, RECORDS[:2])
    page.path.write_bytes(page.path.read_bytes()[:-40])  # cut short after it was checked

    with pytest.raises(RawIngestError, match=r"new_system_requests: DataStore page 4 \(offset 0\)"):
        list(_json_lines_by_year(NEW_SYSTEM_REQUESTS, [page], "open_date"))
