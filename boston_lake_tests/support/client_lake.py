"""A lake for the tests of its readers (the clients of test_layout, `open_lake`): legacy_requests 2013 and 2023
(schema v2) and 2022 (v1, one row rejected, so every year has a manifest and one has rejects), downloaded from the
test portal, built by the raw and bronze zones and crawled into the target's catalog."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest

from boston_lake.lake import layout
from boston_lake.lake.catalog.registration import partition_record_count
from boston_lake.lake.catalog.scan import glue_type
from boston_lake.lake.clock import utc_now
from boston_lake.lake.settings import Settings
from boston_lake.lake.source.portal import CkanPortal
from boston_lake.lake.tables import DATABASE, LEGACY_REQUESTS
from boston_lake.lake.targets import LakeTarget, LocalTarget, build_target
from boston_lake.lake.zones.bronze import BronzeZone
from boston_lake.lake.zones.raw import RawZone

if TYPE_CHECKING:
    from boston_lake_tests.support.portal import TestPortal

YEARS = [2013, 2022, 2023]
TABLE = LEGACY_REQUESTS.name
LOG = logging.getLogger("client_lake")


@dataclass(frozen=True)
class BuiltLake:
    target: LakeTarget
    location: str  # the catalog table's Location
    rows: int  # the catalog's recordCount over its partitions
    types: dict[str, str]  # column -> Glue type, partition key included

    def assert_read(self, table: pa.Table, partition_type: str | None = "string") -> None:
        """`table` holds every row, and each of its columns has the catalog's type (the partition key `year`
        as `partition_type` when the client types it its own way)."""
        assert table.num_rows == self.rows
        expected = {**self.types, "year": partition_type} if partition_type else self.types
        read = {field.name: glue_type(field.type) for field in table.schema if field.name in expected}
        assert read == {name: expected[name] for name in read}
        assert len(read) >= 29, sorted(read)  # at least one generation's columns whole


def build_lake(target: LakeTarget, portal: TestPortal) -> BuiltLake:
    # Imported here: support modules load as plugins, and one imported by another first is not assert-rewritten.
    from boston_lake_tests.support.portal import LEGACY_2022_ID

    lines = portal.file_for(LEGACY_2022_ID).read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b"2022-01", b"not-a-date", 1)
    portal.replace_file(LEGACY_2022_ID, b"".join(lines))
    raw, lake = target.raw_zone(), target.lake_zone()
    RawZone(raw, CkanPortal(portal.url, log=LOG), LOG).ingest(LEGACY_REQUESTS, YEARS, YEARS)
    built = [BronzeZone(raw, lake, LOG).build(LEGACY_REQUESTS, year) for year in YEARS]
    assert sum(partition.rejects for partition in built) == 1
    assert lake.exists(layout.bronze_rejects_key(TABLE, 2022))
    target.crawl(TABLE, YEARS, LOG, utc_now())
    catalog = target.catalog(read_only=True)
    table = catalog.get_table(DATABASE, TABLE)
    assert table is not None
    types = {column["Name"]: column["Type"] for column in table["StorageDescriptor"]["Columns"]}
    types |= {key["Name"]: key["Type"] for key in table["PartitionKeys"]}
    partitions = catalog.get_partitions(DATABASE, TABLE)
    assert sorted(int(partition["Values"][0]) for partition in partitions) == YEARS
    rows = sum(partition_record_count(partition["Parameters"]) for partition in partitions)
    assert rows == sum(partition.rows for partition in built)
    return BuiltLake(target, table["StorageDescriptor"]["Location"], rows, types)


@pytest.fixture
def local_lake(portal: TestPortal, tmp_path: Path) -> BuiltLake:
    return build_lake(LocalTarget(tmp_path / "home"), portal)


@pytest.fixture
def aws_lake(aws_settings: Settings, portal: TestPortal) -> BuiltLake:
    return build_lake(build_target(aws_settings), portal)
