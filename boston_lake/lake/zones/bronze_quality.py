"""Facts about a bronze partition that its checks judge: ids, reconciliation with raw, open dates.

Only the id and open-date columns are read, so checking a year costs a fraction of converting it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.compute as pc

from boston_lake.lake import layout
from boston_lake.lake.source.manifest import read_manifest
from boston_lake.lake.stores import ObjectStore
from boston_lake.lake.tables import LakeTable
from boston_lake.lake.zones.bronze import META_PREFIX, BronzeError, footer_metadata, open_parquet, stored_rejects

EXAMPLES = 5


@dataclass(frozen=True)
class PartitionFacts:
    table: str
    year: int
    key: str
    rows: int
    rejects: int
    raw_data_rows: int | None  # None when the raw partition has no manifest
    raw_sha256: str | None
    built_from_sha256: str
    id_column: str
    null_ids: int
    duplicate_ids: int
    duplicate_examples: list[str]
    opened_column: str
    opened_outside_year: int
    opened_missing: int

    @property
    def reconciles(self) -> bool:
        return self.raw_data_rows is not None and self.rows + self.rejects == self.raw_data_rows

    @property
    def emptiness(self) -> str | None:
        """Why the year holds no rows (a header-only source file, or every row rejected); None if it has rows."""
        if self.rows:
            return None
        if self.rejects:
            return f"all {self.rejects} rows of the raw file were rejected"
        return "the raw file has a header and no data rows" if self.raw_data_rows == 0 else "bronze holds no rows"

    @property
    def outside_share(self) -> float:
        return self.opened_outside_year / self.rows if self.rows else 0.0


def bronze_years(lake_store: ObjectStore, table: LakeTable) -> list[int]:
    """The years that have a bronze partition, for checks run outside a partitioned run."""
    data_file = "/" + layout.BRONZE_FILE
    return sorted(
        year
        for stored in lake_store.list(layout.bronze_table_prefix(table.name))
        if stored.key.endswith(data_file) and (year := layout.year_of_key(stored.key)) is not None
    )


def partition_facts(raw_store: ObjectStore, lake_store: ObjectStore, table: LakeTable, year: int) -> PartitionFacts:
    key = layout.bronze_data_key(table.name, year)
    if not lake_store.exists(key):
        raise BronzeError(f"{table.name} {year}: no bronze partition at {lake_store.uri(key)}")
    parquet = open_parquet(lake_store, key)
    generation = table.match_generation(parquet.schema_arrow.names)
    data = parquet.read(columns=[generation.id_column, generation.opened_column])
    ids = data.column(generation.id_column)
    counts = pc.value_counts(ids.drop_null())
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    opened = data.column(generation.opened_column)
    outside = pc.sum(pc.not_equal(pc.year(opened), year)).as_py() or 0
    manifest = read_manifest(raw_store, layout.raw_partition_prefix(table.name, year) + layout.MANIFEST)
    return PartitionFacts(
        table=table.name,
        year=year,
        key=key,
        rows=data.num_rows,
        rejects=stored_rejects(lake_store, table.name, year),
        raw_data_rows=manifest.data_rows if manifest else None,
        raw_sha256=manifest.sha256 if manifest else None,
        built_from_sha256=footer_metadata(parquet).get(META_PREFIX + "raw_sha256", ""),
        id_column=generation.id_column,
        null_ids=ids.null_count,
        duplicate_ids=len(repeated),
        duplicate_examples=[str(value) for value in repeated.field("values").to_pylist()[:EXAMPLES]],
        opened_column=generation.opened_column,
        opened_outside_year=outside,
        opened_missing=opened.null_count,
    )
