"""The read plans a local lake's query engine makes, with the pyiceberg it falls back to given by the test (to see
whether the snapshot index answered alone)."""

from __future__ import annotations

from collections.abc import Callable

from boston_lake.lake.catalog.iceberg import IcebergTables
from boston_lake.lake.catalog.iceberg_plans import IndexedPlans, SnapshotFiles
from boston_lake.lake.targets import LocalTarget


def indexed_plans(target: LocalTarget, tables: Callable[[], IcebergTables]) -> IndexedPlans:
    catalog = target.home / "catalog"
    return IndexedPlans(
        catalog / "iceberg.sqlite",
        "boston_lake",
        target.lake_zone(),
        target.database,
        SnapshotFiles(catalog / "iceberg_files.sqlite"),
        tables,
    )
