"""Cutting one download of a split source into years by each record's open date: the raw zone's one splitter.

The CSV file (raw.py) and the DataStore's records (raw_datastore.py) are cut the same way: every record goes to
the part of its open year, or, when its date names no partition, to the unassigned part with the reason,
counted; a record of a valid year nobody asked for is counted and not written. Only how a part writes its
records differs: `CsvPart` copies them byte for byte after the header, one at a time; `JsonLinesPart` takes runs
of records of one year already encoded as JSON lines (the DataStore's pages are cut by DuckDB, see
raw_datastore.py). Each part is hashed and counted as it is written, so a year's manifest needs no second read.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

from boston_lake.lake.source.csvscan import CsvProfile, Record, parse_header

NO_OPEN_DATE = "no parseable open date"
# What `open_year` matches, also in SQL that cuts records by year (DuckDB's RE2 and Python's re in ASCII mode read
# it alike).
OPEN_DATE_PATTERN = r"^\s*(\d{4})-\d{2}-\d{2}"
_OPEN_DATE = re.compile(OPEN_DATE_PATTERN, re.ASCII)

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

    def _write(self, data: bytes | memoryview) -> None:
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


@dataclass(frozen=True)
class JsonLines:
    """Consecutive records as JSON lines (one compact object a line, each line ending with a newline)."""

    data: bytes | memoryview
    rows: int


class JsonLinesPart(Part[JsonLines]):
    """A year's records as JSON lines, values exactly as sent."""

    def __init__(self, path: Path):
        super().__init__(path)
        self._rows = 0

    @property
    def rows(self) -> int:
        return self._rows

    def write(self, record: JsonLines) -> None:
        self._write(record.data)
        self._rows += record.rows


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
            part = self.part_for(year_of(record))
            if part is not None:
                part.write(record)
        self.close()

    def part_for(self, year: int | None, rows: int = 1) -> P | None:
        """The part that `rows` records of open year `year` go to, counted; None for a valid year nobody asked for."""
        if year is None or year not in self.valid_years:
            self.unassigned_reasons[
                NO_OPEN_DATE
                if year is None
                else f"open year {year} is outside {min(self.valid_years)}-{max(self.valid_years)}"
            ] += rows
            return self.unassigned
        self.counts[year] += rows
        return self.parts.get(year)

    def close(self) -> None:
        for part in [*self.parts.values(), self.unassigned]:
            part.close()

    def rows_by_year(self) -> dict[int, int]:
        return {year: self.counts[year] for year in sorted(self.counts)}
