"""Cutting one download of a split source into years by each record's open date: the raw zone's one splitter.

The CSV file (raw.py) and the DataStore's records (raw_datastore.py) are cut the same way: every record goes to
the part of its open year, or, when its date names no partition, to the unassigned part with the reason,
counted; a record of a valid year nobody asked for is counted and not written. Only how a part writes its
records differs: `CsvPart` copies them byte for byte after the header, `JsonLinesPart` writes one JSON object
a line. Each part is hashed and counted as it is written, so a year's manifest needs no second read.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

from boston_lake.lake.source.csvscan import CsvProfile, Record, parse_header

NO_OPEN_DATE = "no parseable open date"
# One encoder for every record: json.dumps with options builds a new one per call.
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_OPEN_DATE = re.compile(r"\s*(\d{4})-\d{2}-\d{2}")

R = TypeVar("R")
P = TypeVar("P", bound="Part[Any]")


def open_year(text: str) -> int | None:
    """The year of a value that starts with a YYYY-MM-DD date (leading blanks allowed), else None."""
    match = _OPEN_DATE.match(text)
    return int(match.group(1)) if match else None


class Part(ABC, Generic[R]):
    """One file of a split, hashed and sized as it is written."""

    def __init__(self, path: Path):
        self.path = path
        self.stream: BinaryIO = open(path, "wb")
        self.digest = hashlib.sha256()
        self.size = 0

    @property
    @abstractmethod
    def rows(self) -> int:
        """The records written."""

    @abstractmethod
    def write(self, record: R) -> None: ...

    def _write(self, data: bytes) -> None:
        self.stream.write(data)
        self.digest.update(data)
        self.size += len(data)

    def close(self) -> None:
        self.stream.close()


class CsvPart(Part[Record]):
    """A year's share of a CSV file: the header, then its records byte for byte, profiled as they are written."""

    def __init__(self, path: Path, header: Record):
        super().__init__(path)
        self.profile = CsvProfile(header=parse_header(header))
        self._write(header.data)

    @property
    def rows(self) -> int:
        return self.profile.data_rows

    def write(self, record: Record) -> None:
        self.profile.note(record)
        self._write(record.data)


class JsonLinesPart(Part[dict[str, Any]]):
    """A year's records as JSON lines, values exactly as sent."""

    def __init__(self, path: Path):
        super().__init__(path)
        self._rows = 0

    @property
    def rows(self) -> int:
        return self._rows

    def write(self, record: dict[str, Any]) -> None:
        self._write(_encode_json(record).encode() + b"\n")
        self._rows += 1


class YearSplit(Generic[P]):
    """The records of one download distributed over the requested years' parts and the unassigned part."""

    def __init__(self, parts: Mapping[int, P], unassigned: P, valid_years: Sequence[int]):
        self.parts = dict(parts)
        self.unassigned = unassigned
        self.valid_years = valid_years
        self.counts: Counter[int] = Counter()  # records per valid year, asked for or not
        self.unassigned_reasons: Counter[str] = Counter()

    def run(self, records: Iterable[R], year_of: Callable[[R], int | None]) -> None:
        """Write every record to its part; the parts are closed at the end, whole."""
        for record in records:
            year = year_of(record)
            if year is None or year not in self.valid_years:
                self.unassigned.write(record)
                self.unassigned_reasons[
                    NO_OPEN_DATE
                    if year is None
                    else f"open year {year} is outside {min(self.valid_years)}-{max(self.valid_years)}"
                ] += 1
                continue
            self.counts[year] += 1
            if year in self.parts:
                self.parts[year].write(record)
        self.close()

    def close(self) -> None:
        for part in [*self.parts.values(), self.unassigned]:
            part.close()

    def rows_by_year(self) -> dict[int, int]:
        return {year: self.counts[year] for year in sorted(self.counts)}
