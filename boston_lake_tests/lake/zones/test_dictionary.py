"""The data dictionary describes every column of every lake table, each by what that table's column holds."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from boston_lake.lake.tables import COLUMN_DESCRIPTIONS, TABLES
from boston_lake.lake.targets import LocalTarget
from boston_lake.lake.zones.dictionary import UnknownTable, column_descriptions
from boston_lake.lake.zones.gold import GOLD_TABLES, build_gold_partition
from boston_lake.lake.zones.silver.model import COLUMNS, SCHEMA, SILVER_TABLE
from boston_lake_tests.support.silver_samples import write_silver_samples


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.name)
def test_every_bronze_column_of_every_generation_is_described(table) -> None:
    described = column_descriptions(table.name)
    for generation in table.generations:
        assert {name: described[name] for name in generation.types} == {
            name: COLUMN_DESCRIPTIONS[name] for name in generation.types
        }
    assert "partition key" in described["year"]


def test_silver_is_described_by_its_model() -> None:
    described = column_descriptions(SILVER_TABLE)
    assert list(described) == SCHEMA.names == [column.name for column in COLUMNS]
    assert described["on_time"].startswith("ONTIME -> true")


@pytest.mark.parametrize("table", GOLD_TABLES, ids=lambda table: table.name)
def test_every_gold_column_its_sql_writes_is_described_and_nothing_else(tmp_path: Path, table) -> None:
    write_silver_samples(tmp_path)
    tables = LocalTarget(tmp_path).iceberg()
    written = pq.read_schema(tables.store.uri(build_gold_partition(tables, table, 2025).key)).names
    described = column_descriptions(table.name)
    assert list(described) == written  # the year last, as the commit writes it
    assert [field.doc for field in tables.table(table.name).schema().fields] == list(described.values())
    assert all(described.values())


def test_a_name_shared_across_zones_keeps_each_zones_meaning() -> None:
    on_time = {table: column_descriptions(table)["on_time"] for table in ("legacy_requests", SILVER_TABLE)}
    on_time["service_levels"] = column_descriptions("service_levels")["on_time"]
    assert len(set(on_time.values())) == 3 and "a count" in on_time["service_levels"]


def test_a_table_the_lake_does_not_build_is_named() -> None:
    with pytest.raises(UnknownTable, match="no column descriptions for table 'nope'; the lake has legacy_requests"):
        column_descriptions("nope")
