"""The Catalog contract: every method's semantics, run against the SQLite catalog and the Glue catalog on moto.

What the protocol's docstrings in lake/catalog/__init__.py promise is asserted here once, for both implementations,
so the crawler and the query engines meet the same catalog embedded and on AWS.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from boston_lake.lake.aws.glue import GlueCatalog
from boston_lake.lake.aws.s3 import S3ObjectStore
from boston_lake.lake.catalog import AlreadyExists, Catalog, EntityNotFound
from boston_lake.lake.catalog.local import LocalCatalog

DB = "boston311"
TABLE = "legacy_requests"


@pytest.fixture(params=["local", "glue"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    if request.param == "local":
        created: Catalog = LocalCatalog(tmp_path / "catalog.sqlite")
    else:
        aws_client: Callable[[str], Any] = request.getfixturevalue("aws_client")
        lake = request.getfixturevalue("aws_buckets").lake
        created = GlueCatalog(aws_client("glue"), S3ObjectStore(aws_client("s3"), lake))
    created.create_database(DB, "Boston 311")
    return created


def table_input(*columns: str, name: str = TABLE) -> dict[str, Any]:
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet"},
        "PartitionKeys": [{"Name": "year", "Type": "string"}],
        "StorageDescriptor": {
            "Columns": [{"Name": column, "Type": "string"} for column in columns or ("case_enquiry_id",)],
            "Location": f"s3://lake/bronze/{DB}/{name}/",
        },
    }


def partition_input(year: int | str, rows: int = 1) -> dict[str, Any]:
    return {
        "Values": [str(year)],
        "StorageDescriptor": {"Location": f"s3://lake/bronze/{DB}/{TABLE}/year={year}/"},
        "Parameters": {"recordCount": str(rows)},
    }


def stored(catalog: Catalog, years: list[str] | None = None) -> dict[str, str]:
    """year -> recordCount of the table's partitions."""
    return {p["Values"][0]: p["Parameters"]["recordCount"] for p in catalog.get_partitions(DB, TABLE, years)}


def test_databases_are_created_once_and_listed(catalog: Catalog):
    catalog.create_database(DB, "created again")
    catalog.create_database("silver")
    assert sorted(database["Name"] for database in catalog.list_databases()) == [DB, "silver"]
    assert next(d for d in catalog.list_databases() if d["Name"] == DB)["Description"] == "Boston 311"


def test_a_table_is_created_read_listed_and_refused_a_second_time(catalog: Catalog):
    assert catalog.get_table(DB, TABLE) is None
    catalog.create_table(DB, table_input("a"))
    found = catalog.get_table(DB, TABLE)
    assert found is not None
    assert (found["Name"], found["DatabaseName"], found["VersionId"]) == (TABLE, DB, "1")
    assert found["StorageDescriptor"]["Columns"] == [{"Name": "a", "Type": "string"}]
    assert [table["Name"] for table in catalog.list_tables(DB)] == [TABLE]
    with pytest.raises(AlreadyExists, match=TABLE):
        catalog.create_table(DB, table_input("other"))
    assert catalog.get_table(DB, TABLE)["StorageDescriptor"]["Columns"] == [{"Name": "a", "Type": "string"}]


def test_every_update_archives_a_version_newest_first(catalog: Catalog):
    catalog.create_table(DB, table_input("a"))
    catalog.update_table(DB, table_input("a", "b"))
    catalog.update_table(DB, table_input("a", "b", "c"))

    versions = catalog.get_table_versions(DB, TABLE)
    assert [version["VersionId"] for version in versions] == ["3", "2", "1"]
    assert [[c["Name"] for c in v["Table"]["StorageDescriptor"]["Columns"]] for v in versions] == [
        ["a", "b", "c"],
        ["a", "b"],
        ["a"],
    ]
    assert catalog.get_table(DB, TABLE)["VersionId"] == "3"


def test_deleting_a_table_takes_its_partitions(catalog: Catalog):
    catalog.create_table(DB, table_input())
    catalog.batch_create_partitions(DB, TABLE, [partition_input(2013)])
    catalog.delete_table(DB, TABLE)
    assert catalog.get_table(DB, TABLE) is None
    catalog.create_table(DB, table_input())
    assert catalog.get_partitions(DB, TABLE) == []


def test_what_is_missing_is_named(catalog: Catalog):
    with pytest.raises(EntityNotFound, match="silver"):
        catalog.get_table("silver", TABLE)
    with pytest.raises(EntityNotFound, match="silver"):
        catalog.list_tables("silver")
    with pytest.raises(EntityNotFound, match=TABLE):
        catalog.update_table(DB, table_input())
    with pytest.raises(EntityNotFound, match=TABLE):
        catalog.delete_table(DB, TABLE)
    with pytest.raises(EntityNotFound, match=TABLE):
        catalog.get_partitions(DB, TABLE)
    with pytest.raises(EntityNotFound, match=TABLE):
        catalog.batch_create_partitions(DB, TABLE, [partition_input(2013)])


def test_partitions_are_filtered_by_their_first_value(catalog: Catalog):
    catalog.create_table(DB, table_input())
    catalog.batch_create_partitions(DB, TABLE, [partition_input(year) for year in (2023, 2013, 2022)])
    assert stored(catalog) == {"2013": "1", "2022": "1", "2023": "1"}
    assert stored(catalog, ["2013", "2023", "1999"]) == {"2013": "1", "2023": "1"}
    assert catalog.get_partitions(DB, TABLE, []) == []
    first = catalog.get_partitions(DB, TABLE, ["2013"])[0]
    assert (first["DatabaseName"], first["TableName"], first["Values"]) == (DB, TABLE, ["2013"])
    assert first["StorageDescriptor"]["Location"] == partition_input(2013)["StorageDescriptor"]["Location"]


def test_batches_of_any_size_are_applied_and_every_partition_is_listed(catalog: Catalog):
    """More than Glue takes in one call (100 created or updated, 25 deleted), and more than one page."""
    catalog.create_table(DB, table_input())
    years = [str(year) for year in range(1800, 2030)]
    catalog.batch_create_partitions(DB, TABLE, [partition_input(year) for year in years])
    assert stored(catalog) == dict.fromkeys(years, "1")
    catalog.batch_update_partitions(DB, TABLE, [partition_input(year, rows=2) for year in years])
    assert stored(catalog) == dict.fromkeys(years, "2")
    catalog.batch_delete_partitions(DB, TABLE, [[year] for year in years[:-1]])
    assert stored(catalog) == {years[-1]: "2"}


def test_creating_existing_partitions_creates_the_others_and_names_the_existing(catalog: Catalog):
    catalog.create_table(DB, table_input())
    catalog.batch_create_partitions(DB, TABLE, [partition_input(2013, rows=5)])
    with pytest.raises(AlreadyExists, match="2013"):
        catalog.batch_create_partitions(DB, TABLE, [partition_input(2022), partition_input(2013, rows=9)])
    assert stored(catalog) == {"2013": "5", "2022": "1"}  # the existing one is left as it was


def test_updating_missing_partitions_updates_the_others_and_names_the_missing(catalog: Catalog):
    catalog.create_table(DB, table_input())
    catalog.batch_create_partitions(DB, TABLE, [partition_input(2013)])
    with pytest.raises(EntityNotFound, match="1999"):
        catalog.batch_update_partitions(DB, TABLE, [partition_input(2013, rows=7), partition_input(1999)])
    assert stored(catalog) == {"2013": "7"}


def test_deleting_missing_partitions_deletes_the_others_and_names_the_missing(catalog: Catalog):
    catalog.create_table(DB, table_input())
    catalog.batch_create_partitions(DB, TABLE, [partition_input(2013), partition_input(2022)])
    with pytest.raises(EntityNotFound, match="1999"):
        catalog.batch_delete_partitions(DB, TABLE, [["2013"], ["1999"]])
    assert stored(catalog) == {"2022": "1"}


def test_an_empty_batch_does_nothing(catalog: Catalog):
    catalog.create_table(DB, table_input())
    catalog.batch_create_partitions(DB, TABLE, [])
    catalog.batch_update_partitions(DB, TABLE, [])
    catalog.batch_delete_partitions(DB, TABLE, [])
    assert catalog.get_partitions(DB, TABLE) == []


def test_every_method_of_the_protocol_is_there_with_its_parameters(catalog: Catalog):
    methods = [name for name, member in vars(Catalog).items() if callable(member) and not name.startswith("_")]
    assert len(methods) == 14
    for name in methods:
        expected = list(inspect.signature(getattr(Catalog, name)).parameters)
        assert list(inspect.signature(getattr(type(catalog), name)).parameters) == expected, name
