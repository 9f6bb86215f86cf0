"""The raw zone's one splitter, with both of its writers: every record in the part of its open year, or unassigned
with the reason; each part's bytes, hash and row count as written."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from boston_lake.lake.source.csvscan import iter_records, parse_fields
from boston_lake.lake.zones.year_split import (
    NO_OPEN_DATE,
    CsvPart,
    JsonLines,
    JsonLinesPart,
    Part,
    YearSplit,
    open_year,
)

VALID_YEARS = range(2015, 2027)


def _assert_written(part: Part, rows: int) -> bytes:
    data = part.path.read_bytes()
    assert part.stream.closed
    assert part.rows == rows
    assert part.size == len(data)
    assert part.digest.hexdigest() == hashlib.sha256(data).hexdigest()
    return data


@pytest.mark.parametrize(
    "text, year",
    [("2024-03-01 10:00:00+00", 2024), ("  2019-12-31", 2019), ("", None), ("03/01/2024", None), ("2024-3-1", None)],
)
def test_the_open_year_is_the_leading_date(text, year):
    assert open_year(text) == year


def test_csv_records_go_byte_for_byte_to_their_year_after_the_header(tmp_path: Path):
    csv = (
        b"case_id,open_date\r\n"
        b"1,2024-01-05 08:00:00+00\r\n"
        b'2,"2025-02-01 09:00:00+00"\r\n'
        b"3,not a date\r\n"
        b"4,1999-07-01 00:00:00+00\r\n"
        b"5,2023-06-01 00:00:00+00\r\n"  # a valid year nobody asked for: counted, not written
        b"6\r\n"  # no open date field at all
        b"7,2024-12-31 23:59:59+00\r\n"
    )
    records = iter_records(io.BytesIO(csv))
    header = next(records)
    split = YearSplit(
        {year: CsvPart(tmp_path / f"{year}.csv", header) for year in (2024, 2025)},
        CsvPart(tmp_path / "unassigned.csv", header),
        VALID_YEARS,
    )

    def year_of(record):
        fields = parse_fields(record)
        return open_year(fields[1]) if len(fields) > 1 else None

    split.run(records, year_of)

    lines = csv.splitlines(keepends=True)
    assert _assert_written(split.parts[2024], 2) == lines[0] + lines[1] + lines[7]
    assert _assert_written(split.parts[2025], 1) == lines[0] + lines[2]
    assert _assert_written(split.unassigned, 3) == lines[0] + lines[3] + lines[4] + lines[6]
    assert split.rows_by_year() == {2023: 1, 2024: 2, 2025: 1}
    assert split.unassigned_reasons == {NO_OPEN_DATE: 2, "open year 1999 is outside 2015-2026": 1}
    assert split.parts[2024].profile.header == ["case_id", "open_date"]


def test_json_lines_go_to_their_year_in_runs_counted_by_their_records(tmp_path: Path):
    split = YearSplit(
        {2024: JsonLinesPart(tmp_path / "2024.jsonl")}, JsonLinesPart(tmp_path / "unassigned.jsonl"), VALID_YEARS
    )
    runs = [
        (2024, JsonLines(b'{"_id":1,"note":"\xc3\xa9"}\n{"_id":2}\n', 2)),
        (None, JsonLines(b'{"_id":3,"open_date":null}\n', 1)),
        (2030, JsonLines(b'{"_id":4}\n', 1)),
        (2023, JsonLines(b'{"_id":5}\n{"_id":6}\n', 2)),  # a valid year nobody asked for: counted, not written
        (2024, JsonLines(memoryview(b'{"_id":7}\n'), 1)),
    ]
    for year, lines in runs:
        part = split.part_for(year, lines.rows)
        if part is not None:
            part.write(lines)
    split.close()

    assert _assert_written(split.parts[2024], 3) == b'{"_id":1,"note":"\xc3\xa9"}\n{"_id":2}\n{"_id":7}\n'
    assert _assert_written(split.unassigned, 2) == b'{"_id":3,"open_date":null}\n{"_id":4}\n'
    assert split.rows_by_year() == {2023: 2, 2024: 3}
    assert split.unassigned_reasons == {NO_OPEN_DATE: 1, "open year 2030 is outside 2015-2026": 1}
