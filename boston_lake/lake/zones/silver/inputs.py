"""What a silver year reads: the bronze files of both tables for the year and its two neighbours.

A neighbour that has not been built, or a year a source does not have (the NEW SYSTEM starts in 2025), is read
as empty and named, so a partition can be built before its neighbours and rebuilt when they land.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from boston_lake.lake import layout
from boston_lake.lake.errors import LakeError
from boston_lake.lake.stores import ObjectStore
from boston_lake.lake.tables import TABLES, HeaderMismatch, LakeTable
from boston_lake.lake.zones.bronze import read_published
from boston_lake.lake.zones.publish import object_sha256, open_parquet, stored_object
from boston_lake.lake.zones.silver.model import (
    COLUMNS,
    COMPUTED_ONCE,
    INPUT_VIEWS,
    TRANSFORM_VERSION,
    VIEW_OF_GENERATION,
    spark_ddl,
    transform_statements,
)

NEIGHBOURS = (-1, 0, 1)


class SilverInputError(LakeError, RuntimeError):
    """A bronze file that silver must read cannot be used; the message names it."""


@dataclass(frozen=True)
class BronzeInput:
    table: str
    year: int
    key: str
    view: str  # the SQL view of its schema generation
    rows: int
    # The object's content (sha256): a bronze year rebuilt or repaired is a new input, a lake copied elsewhere is
    # not. Taken from the bronze manifest while the object is untouched since its build, else read and hashed.
    content_id: str


@dataclass(frozen=True)
class SilverInputs:
    year: int
    files: tuple[BronzeInput, ...]
    missing: tuple[str, ...]  # each neighbour read as empty, and why

    @property
    def rows(self) -> int:
        return sum(file.rows for file in self.files)

    def fingerprint(self) -> str:
        """Identifies what the partition is built from: the bronze files read and the transform's version."""
        described = [asdict(file) for file in self.files]
        text = json.dumps({"transform": TRANSFORM_VERSION, "inputs": described}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def spark_plan(inputs: SilverInputs, path_of: Callable[[str], str]) -> dict[str, Any]:
    """What the Spark runner needs to build `inputs.year`, as JSON: the files of each input view (at
    `path_of(key)`), the SQL statements, the views to compute once and the file's columns."""
    views = {}
    for view, generation in INPUT_VIEWS.items():
        views[view] = {
            "files": [{"path": path_of(f.key), "year": f.year} for f in inputs.files if f.view == view],
            "columns": [name for name, _ in generation.columns],
            "empty_ddl": spark_ddl(generation),
        }
    return {
        "year": inputs.year,
        "views": views,
        "statements": transform_statements(inputs.year),
        "computed_once": list(COMPUTED_ONCE),
        "file_columns": [column.name for column in COLUMNS],
    }


def window(year: int) -> list[int]:
    return [year + offset for offset in NEIGHBOURS]


def find_inputs(store: ObjectStore, year: int) -> SilverInputs:
    files, missing = [], []
    for table in TABLES:
        for source_year in window(year):
            if source_year < table.first_year:
                missing.append(f"{table.name} {source_year}: the source has no such year")
                continue
            key = layout.bronze_data_key(table.name, source_year)
            if not store.exists(key):
                missing.append(f"{table.name} {source_year}: bronze not built")
                continue
            files.append(_describe(store, table, source_year, key))
    return SilverInputs(year, tuple(files), tuple(missing))


def _describe(store: ObjectStore, table: LakeTable, year: int, key: str) -> BronzeInput:
    parquet = open_parquet(store, key)
    try:
        generation = table.match_generation(parquet.schema_arrow.names)
    except HeaderMismatch as error:
        raise SilverInputError(f"{store.uri(key)}: {error}") from error
    stored = stored_object(store, key)
    if stored is None:
        raise SilverInputError(f"{store.uri(key)} vanished while silver read its inputs")
    published = read_published(store, table.name, year)
    record = published.record if published is not None and published.key == key else None
    content_id = f"sha256:{object_sha256(store, stored, record)}"
    return BronzeInput(
        table=table.name,
        year=year,
        key=key,
        view=VIEW_OF_GENERATION[generation.name],
        rows=parquet.metadata.num_rows,
        content_id=content_id,
    )
