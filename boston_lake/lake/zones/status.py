"""What the lake holds, per table and year, read from manifests and Parquet footers only."""

from __future__ import annotations

from dataclasses import dataclass

from boston_lake.lake import layout
from boston_lake.lake.source.manifest import read_manifest
from boston_lake.lake.stores import ObjectStore
from boston_lake.lake.tables import LakeTable
from boston_lake.lake.zones.bronze import partition_damage, repair_hint
from boston_lake.lake.zones.bronze_quality import META_PREFIX, bookkeeping_key, bronze_years, stored_rejects
from boston_lake.lake.zones.publish import footer_metadata, open_parquet


@dataclass(frozen=True)
class PartitionStatus:
    table: str
    year: int
    raw_rows: int | None
    raw_bytes: int | None
    downloaded_at: str | None
    bronze_rows: int | None
    rejects: int | None
    bronze_current: bool  # built from the raw file the raw zone holds now
    damage: str | None = None  # why the stored bronze year cannot be trusted

    @property
    def problem(self) -> str | None:
        """One line for a damaged year: what is wrong and the command that repairs it."""
        if self.damage is None:
            return None
        return f"{self.table} {self.year}: damaged: {self.damage}; repair: {repair_hint(self.table, self.year)}"

    def as_row(self) -> dict[str, object]:
        return {
            "table": self.table,
            "year": self.year,
            "raw_rows": self.raw_rows,
            "raw_mb": round(self.raw_bytes / 1e6, 2) if self.raw_bytes is not None else None,
            "downloaded_at": self.downloaded_at,
            "bronze_rows": self.bronze_rows,
            "rejects": self.rejects,
            "bronze_current": "DAMAGED" if self.damage else self.bronze_current,
        }


def raw_years(raw_store: ObjectStore, table: LakeTable) -> list[int]:
    suffix = "/" + layout.MANIFEST
    return sorted(
        year
        for stored in raw_store.list(layout.raw_table_prefix(table.name))
        if stored.key.endswith(suffix)
        and not layout.is_bookkeeping(stored.key.removesuffix(suffix))
        and (year := layout.year_of_key(stored.key)) is not None
    )


def lake_status(
    raw_store: ObjectStore, lake_store: ObjectStore, tables: tuple[LakeTable, ...]
) -> list[PartitionStatus]:
    statuses = []
    for table in tables:
        for year in sorted(set(raw_years(raw_store, table)) | set(bronze_years(lake_store, table))):
            manifest = read_manifest(raw_store, layout.raw_partition_prefix(table.name, year) + layout.MANIFEST)
            key, manifest_key = layout.bronze_data_key(table.name, year), layout.bronze_manifest_key(table.name, year)
            bronze_rows = rejects = None
            built_from = damage = None
            if lake_store.exists(key) or lake_store.exists(bookkeeping_key(lake_store, manifest_key)):
                damage = partition_damage(lake_store, table.name, year)
                rejects = stored_rejects(lake_store, table.name, year)
            if lake_store.exists(key) and damage is None:
                parquet = open_parquet(lake_store, key)
                bronze_rows = parquet.metadata.num_rows
                built_from = footer_metadata(parquet).get(META_PREFIX + "raw_sha256")
            statuses.append(
                PartitionStatus(
                    table=table.name,
                    year=year,
                    raw_rows=manifest.data_rows if manifest else None,
                    raw_bytes=manifest.bytes if manifest else None,
                    downloaded_at=manifest.downloaded_at if manifest else None,
                    bronze_rows=bronze_rows,
                    rejects=rejects,
                    bronze_current=bool(manifest and built_from == manifest.sha256),
                    damage=damage,
                )
            )
    return statuses
