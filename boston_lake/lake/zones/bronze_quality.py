"""Facts about a bronze year that its audits and checks judge: ids, reconciliation with raw, open dates.

The same facts come from a staged file (the blocking audits, before the year is published) and from the published
object (the asset checks, after): only the id and open-date columns are read, so judging a year costs a fraction of
converting it. Rows reconcile with the raw file the version was built from (its footer records that file's sha256
and data rows), so the checks stay true of the published year while raw holds a newer file bronze refused.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from boston_lake.lake import layout
from boston_lake.lake.memory import release_freed_memory
from boston_lake.lake.source.manifest import RawManifest, read_manifest
from boston_lake.lake.stores import ObjectNotFound, ObjectStore
from boston_lake.lake.tables import LakeTable
from boston_lake.lake.zones.publish import AuditFailure, Census, footer_metadata, open_parquet, sorted_values

EXAMPLES = 5
META_PREFIX = "boston_lake."  # bronze's own footer entries: the raw file it was built from, the converter version
IDS_CHECK = "case_id_present_and_unique"
RECONCILE_CHECK = "rows_reconcile_with_raw"


@dataclass(frozen=True)
class PartitionFacts:
    table: str
    year: int
    key: str
    rows: int
    rejects: int
    raw_data_rows: int | None  # of the raw file this version was built from; None when nothing says
    raw_sha256: str | None  # of the raw file the raw zone holds now; None when the raw partition has no manifest
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
    def stale(self) -> bool:
        """Raw holds another file than the one this version was built from (not yet built, or refused)."""
        return (
            self.raw_sha256 is not None and bool(self.built_from_sha256) and self.built_from_sha256 != self.raw_sha256
        )

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


def bookkeeping_key(store: ObjectStore, key: str) -> str:
    """`key` in `_meta/`, or where a lake laid out before `_meta/` keeps it until a run of its year moves it."""
    before = layout.before_meta(key)
    return before if not store.exists(key) and store.exists(before) else key


def stored_rejects(store: ObjectStore, table: str, year: int) -> int:
    """How many rows of the partition's raw file were rejected, from the partition's rejects file."""
    key = bookkeeping_key(store, layout.bronze_rejects_key(table, year))
    if not store.exists(key):
        return 0
    return sum(1 for _ in csv.reader(io.StringIO(store.get_bytes(key).decode("utf-8")))) - 1


def facts_of(
    parquet: pq.ParquetFile, table: LakeTable, year: int, key: str, rejects: int, manifest: RawManifest | None
) -> PartitionFacts:
    """The facts of one version of a year (staged or published) whose rejects number `rejects`; `manifest` is the
    raw partition's manifest as it is now."""
    generation = table.match_generation(parquet.schema_arrow.names)
    data = parquet.read(columns=[generation.id_column, generation.opened_column])
    ids = data.column(generation.id_column)
    repeated = repeated_values(ids)
    opened = data.column(generation.opened_column)
    outside = pc.sum(pc.not_equal(pc.year(opened), year)).as_py() or 0
    footer = footer_metadata(parquet)
    built_from = footer.get(META_PREFIX + "raw_sha256", "")
    recorded_rows = footer.get(META_PREFIX + "raw_data_rows")
    if recorded_rows is not None:
        raw_data_rows: int | None = int(recorded_rows)
    else:  # not written by the bronze zone: judged against raw as it is now
        raw_data_rows = manifest.data_rows if manifest else None
    return PartitionFacts(
        table=table.name,
        year=year,
        key=key,
        rows=data.num_rows,
        rejects=rejects,
        raw_data_rows=raw_data_rows,
        raw_sha256=manifest.sha256 if manifest else None,
        built_from_sha256=built_from,
        id_column=generation.id_column,
        null_ids=ids.null_count,
        duplicate_ids=len(repeated),
        duplicate_examples=[str(value) for value in repeated[:EXAMPLES].to_pylist()],
        opened_column=generation.opened_column,
        opened_outside_year=outside,
        opened_missing=opened.null_count,
    )


def repeated_values(values: pa.ChunkedArray) -> pa.Array:
    """The values that occur more than once, ascending, nulls left out. Found by sorting, in a few copies of the
    column: counting them in a hash table (`value_counts`) took ~55 MiB for the 375,000 ids of a year, the peak
    of a refresh's checks."""
    ordered = sorted_values(values)
    if len(ordered) < 2:
        return ordered.slice(0, 0)
    later = ordered.slice(1)
    return pc.unique(later.filter(pc.equal(later, ordered.slice(0, len(ordered) - 1))))


def partition_facts(raw_store: ObjectStore, lake_store: ObjectStore, table: LakeTable, year: int) -> PartitionFacts:
    """The facts of the published year."""
    key = layout.bronze_data_key(table.name, year)
    if not lake_store.exists(key):
        raise ObjectNotFound(f"{table.name} {year}: no bronze partition at {lake_store.uri(key)}")
    manifest = read_manifest(raw_store, layout.raw_partition_prefix(table.name, year) + layout.MANIFEST)
    rejects = stored_rejects(lake_store, table.name, year)
    try:
        return facts_of(open_parquet(lake_store, key), table, year, key, rejects, manifest)
    finally:
        release_freed_memory()  # the checks of many years stay at the memory of one


def bronze_audits(facts: PartitionFacts, published: Census | None) -> list[AuditFailure]:
    """The blocking audits of a staged year: every row has a case id and none repeats; rows and rejects add up to
    the raw file's data rows."""
    before = {"rows": published.rows} if published is not None else {}
    failures = []
    if facts.null_ids or facts.duplicate_ids:
        failures.append(
            AuditFailure(
                IDS_CHECK,
                before,
                {
                    "rows": facts.rows,
                    f"rows without {facts.id_column}": facts.null_ids,
                    "ids repeated": facts.duplicate_ids,
                },
                f"e.g. {', '.join(facts.duplicate_examples)}" if facts.duplicate_examples else "",
            )
        )
    if not facts.reconciles:
        failures.append(
            AuditFailure(
                RECONCILE_CHECK,
                before,
                {"rows": facts.rows, "rejects": facts.rejects, "raw data rows": facts.raw_data_rows or 0},
                f"{facts.rows:,} rows + {facts.rejects:,} rejects != {facts.raw_data_rows or 0:,} data rows in raw",
            )
        )
    return failures
