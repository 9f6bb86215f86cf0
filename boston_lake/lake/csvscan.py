"""Streaming, byte-exact CSV record scanning.

Raw files are split, counted and checked without being decoded as a whole or held in memory: a record ends
at a newline outside quotes (RFC 4180 doubles quotes inside quoted fields, so quote parity is enough).
Blank lines are skipped, as the converter skips them, so both count the same data rows.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

UTF8_BOM = codecs.BOM_UTF8
MAX_LOCATIONS = 100  # invalid records listed by location; the count is always exact
REPAIR_ERRORS = "boston_lake.cp1252_fallback"


class CsvFormatError(ValueError):
    """The file is not a CSV with a header; the caller adds the file's name."""


@dataclass(frozen=True)
class Record:
    number: int  # 0 is the header, data records count from 1
    offset: int  # byte offset of the record's first byte in the file
    data: bytes  # exactly as in the file, line terminator included


@dataclass(frozen=True)
class RecordLocation:
    number: int
    offset: int


@dataclass
class CsvProfile:
    """What the raw zone records about a file so that bronze can be reconciled with it."""

    header: list[str]
    data_rows: int = 0
    invalid_utf8_rows: int = 0
    invalid_utf8_locations: list[RecordLocation] = field(default_factory=list)

    def note(self, record: Record) -> None:
        self.data_rows += 1
        try:
            record.data.decode("utf-8")
        except UnicodeDecodeError:
            self.invalid_utf8_rows += 1
            if len(self.invalid_utf8_locations) < MAX_LOCATIONS:
                self.invalid_utf8_locations.append(RecordLocation(record.number, record.offset))


def iter_records(stream: BinaryIO) -> Iterator[Record]:
    offset = 0
    number = -1
    parts: list[bytes] = []
    start = 0
    in_quotes = False
    for line in stream:
        if not parts:
            start = offset
        offset += len(line)
        parts.append(line)
        if line.count(b'"') % 2:
            in_quotes = not in_quotes
        if in_quotes:
            continue
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts = []
        if data in (b"\n", b"\r\n"):
            continue
        number += 1
        yield Record(number, start, data)
    if parts:  # an unterminated quote runs to the end of the file: still one record, for the converter to reject
        yield Record(number + 1, start, b"".join(parts))


def parse_header(record: Record) -> list[str]:
    try:
        text = record.data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CsvFormatError(f"header is not UTF-8 ({error})") from error
    names = next(csv.reader(io.StringIO(text)), [])
    names = [name.strip() for name in names]
    if not any(names):
        raise CsvFormatError("the first line is empty: expected a CSV header")
    return names


def parse_fields(record: Record) -> list[str]:
    text = record.data.decode("utf-8", errors=REPAIR_ERRORS)
    return next(csv.reader(io.StringIO(text)), [])


def read_header(path: Path) -> tuple[list[str], int]:
    """The header's column names and its length in bytes; empty files are an error."""
    with open(path, "rb") as stream:
        first = next(iter_records(stream), None)
    if first is None:
        raise CsvFormatError("the file is empty (0 data bytes): expected a CSV header")
    return parse_header(first), len(first.data)


def profile_records(records: Iterator[Record]) -> CsvProfile:
    first = next(records, None)
    if first is None:
        raise CsvFormatError("the file is empty (0 data bytes): expected a CSV header")
    profile = CsvProfile(header=parse_header(first))
    for record in records:
        profile.note(record)
    return profile


def profile_file(path: Path) -> CsvProfile:
    with open(path, "rb") as stream:
        return profile_records(iter_records(stream))


def repair_encoding(source: Path, destination: Path) -> list[RecordLocation]:
    """Copy a CSV, re-decoding bytes that are not UTF-8 as Windows-1252 (what stray Latin-1 text almost
    always is), so that those rows reach bronze instead of being rejected. Returns the repaired records."""
    repaired: list[RecordLocation] = []
    with open(source, "rb") as reader, open(destination, "wb") as writer:
        for record in iter_records(reader):
            data = record.data
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                data = data.decode("utf-8", errors=REPAIR_ERRORS).encode("utf-8")
                repaired.append(RecordLocation(record.number, record.offset))
            writer.write(data)
    return repaired


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start : error.end]
    return bad.decode("cp1252", errors="replace"), error.end


codecs.register_error(REPAIR_ERRORS, _cp1252_fallback)
