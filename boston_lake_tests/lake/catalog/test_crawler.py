from __future__ import annotations

import logging
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.catalog import CrawlerRunning
from boston_lake.lake.catalog.crawler import (
    CREATED,
    DELETE_FROM_DATABASE,
    DELETED,
    DEPRECATED,
    LOG,
    NO_DATA,
    UNCHANGED,
    UPDATED,
    Crawler,
    SchemaChangePolicy,
)
from boston_lake.lake.catalog.glue_definitions import (
    DEPRECATED_BY_CRAWLER,
    PARQUET_INPUT_FORMAT,
    PARQUET_OUTPUT_FORMAT,
    PARQUET_SERDE,
)
from boston_lake.lake.catalog.local import LocalCatalog
from boston_lake.lake.catalog.scan import CrawlError, classify_object
from boston_lake.lake.stores import LocalObjectStore
from boston_lake_tests.support.bronze_samples import BronzeSamples, bronze_publish

DB = "boston311"
LEGACY = "legacy_requests"
NEW_SYSTEM = "new_system_requests"
LEGACY_TARGET = (LEGACY, layout.bronze_table_prefix(LEGACY))
NEW_SYSTEM_TARGET = (NEW_SYSTEM, layout.bronze_table_prefix(NEW_SYSTEM))
V1_ONLY = {"target_dt", "ontime", "submittedphoto", "closedphoto"}
V2_ONLY = {"sla_target_dt", "on_time", "submitted_photo", "closed_photo", "geom_4326"}


def column_names(descriptor: dict) -> list[str]:
    return [column["Name"] for column in descriptor["Columns"]]


def column_types(descriptor: dict) -> dict[str, str]:
    return {column["Name"]: column["Type"] for column in descriptor["Columns"]}


def put_parquet(store: LocalObjectStore, key: str, columns: dict[str, pa.Array]) -> None:
    with store.writing(key) as path:
        pq.write_table(pa.table(columns), path)


def partition_values(catalog: LocalCatalog, table: str) -> list[list[str]]:
    return [partition["Values"] for partition in catalog.get_partitions(DB, table)]


def test_v1_and_v2_partitions_become_one_table_and_the_change_is_a_new_version(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog, bronze_samples: BronzeSamples
) -> None:
    crawler = Crawler(bronze_store, bronze_catalog, DB)
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    first = crawler.crawl([LEGACY_TARGET]).table(LEGACY)
    v1_columns = column_names(bronze_catalog.get_table(DB, LEGACY)["StorageDescriptor"])

    bronze_publish(bronze_store, bronze_samples.legacy_v2_2013)
    bronze_publish(bronze_store, bronze_samples.legacy_v2_2023)
    second = crawler.crawl([LEGACY_TARGET]).table(LEGACY)

    table = bronze_catalog.get_table(DB, LEGACY)
    columns = column_names(table["StorageDescriptor"])
    assert (first.action, first.version_id, first.partitions_added) == (CREATED, "1", [("2022",)])
    assert V1_ONLY <= set(v1_columns) and not V2_ONLY & set(v1_columns)
    assert (second.action, second.version_id) == (UPDATED, "2")
    assert second.partitions_added == [("2013",), ("2023",)]
    assert set(second.columns_added) == V2_ONLY and second.columns_removed == []
    assert columns[: len(v1_columns)] == v1_columns, "columns already in the table keep their places"
    assert V1_ONLY | V2_ONLY <= set(columns) and len(columns) == len(set(columns))
    assert [v["VersionId"] for v in bronze_catalog.get_table_versions(DB, LEGACY)] == ["2", "1"]
    assert second.record_count == int(table["Parameters"]["recordCount"]) == 100 + 700 + 700
    assert second.conflicts == []


def test_each_partition_keeps_its_own_columns_location_and_statistics(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog, bronze_samples: BronzeSamples
) -> None:
    Crawler(bronze_lake, bronze_catalog, DB).crawl([LEGACY_TARGET])

    partitions = {p["Values"][0]: p for p in bronze_catalog.get_partitions(DB, LEGACY)}
    table_location = bronze_catalog.get_table(DB, LEGACY)["StorageDescriptor"]["Location"]
    for sample in bronze_samples.legacy:
        partition = partitions[str(sample.year)]
        descriptor = partition["StorageDescriptor"]
        (stored,) = bronze_lake.list(layout.bronze_data_key(LEGACY, sample.year))
        assert column_names(descriptor) == pq.read_schema(sample.path).names
        assert descriptor["Location"] == f"{table_location}year={sample.year}/"
        assert descriptor["SerdeInfo"]["SerializationLibrary"] == PARQUET_SERDE
        assert partition["Parameters"]["recordCount"] == str(sample.rows)
        assert partition["Parameters"]["objectCount"] == "1"
        assert partition["Parameters"]["sizeKey"] == str(stored.size)
        assert partition["Parameters"]["averageRecordSize"] == str(stored.size // sample.rows)
    assert set(column_names(partitions["2022"]["StorageDescriptor"])) & V2_ONLY == set()


def test_the_table_is_written_in_glues_data_model(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog, bronze_samples: BronzeSamples
) -> None:
    Crawler(bronze_lake, bronze_catalog, DB, name="my_crawler").crawl([LEGACY_TARGET])

    table = bronze_catalog.get_table(DB, LEGACY)
    descriptor = table["StorageDescriptor"]
    sizes = [stored.size for stored in bronze_lake.list(layout.bronze_table_prefix(LEGACY))]
    rows = sum(sample.rows for sample in bronze_samples.legacy)
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["PartitionKeys"] == [{"Name": "year", "Type": "string"}]
    assert descriptor["Location"] == bronze_lake.uri(layout.bronze_table_prefix(LEGACY)) + "/"
    assert (descriptor["InputFormat"], descriptor["OutputFormat"]) == (PARQUET_INPUT_FORMAT, PARQUET_OUTPUT_FORMAT)
    assert (
        descriptor["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    )
    assert table["Parameters"] == {
        "classification": "parquet",
        "compressionType": "none",
        "typeOfData": "file",
        "recordCount": str(rows),
        "objectCount": "3",
        "sizeKey": str(sum(sizes)),
        "averageRecordSize": str(sum(sizes) // rows),
        "UPDATED_BY_CRAWLER": "my_crawler",
        "CrawlerSchemaSerializerVersion": "1.0",
        "CrawlerSchemaDeserializerVersion": "1.0",
        "EXTERNAL": "TRUE",
    }
    types = column_types(descriptor)
    assert (types["case_enquiry_id"], types["open_dt"], types["latitude"], types["location_zipcode"]) == (
        "bigint",
        "timestamp",
        "double",
        "string",
    )


def test_new_system_is_a_table_of_its_own(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog, bronze_samples: BronzeSamples
) -> None:
    result = Crawler(bronze_lake, bronze_catalog, DB).crawl([LEGACY_TARGET, NEW_SYSTEM_TARGET])

    new_system = bronze_catalog.get_table(DB, NEW_SYSTEM)
    types = column_types(new_system["StorageDescriptor"])
    assert [t["Name"] for t in bronze_catalog.list_tables(DB)] == [LEGACY, NEW_SYSTEM]
    assert result.table(NEW_SYSTEM).action == CREATED
    assert partition_values(bronze_catalog, NEW_SYSTEM) == [["2025"], ["2026"]]
    assert (types["case_id"], types["open_date"]) == ("string", "timestamp")
    assert not set(types) & {"case_enquiry_id", "target_dt", "sla_target_dt", "geom_4326"}
    assert new_system["Parameters"]["recordCount"] == str(sum(s.rows for s in bronze_samples.new_system))


def test_an_unchanged_recrawl_archives_no_version(bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog) -> None:
    crawler = Crawler(bronze_lake, bronze_catalog, DB)
    crawler.crawl([LEGACY_TARGET, NEW_SYSTEM_TARGET])
    partitions_before = bronze_catalog.get_partitions(DB, LEGACY)

    again = crawler.crawl([LEGACY_TARGET, NEW_SYSTEM_TARGET])

    for crawl in again.tables:
        assert (crawl.action, crawl.version_id) == (UNCHANGED, "1")
        assert crawl.partitions_added == crawl.partitions_updated == crawl.partitions_removed == []
    assert len(bronze_catalog.get_table_versions(DB, LEGACY)) == 1
    assert bronze_catalog.get_partitions(DB, LEGACY) == partitions_before


def test_a_crawl_that_changes_nothing_writes_nothing_to_the_catalog_file(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    """As each run does: a new catalog handle and crawler, over a lake that has not changed since the last crawl.
    (The crawl lock beside the catalog does name its holder while a crawl runs: that write is the lock's job.)"""
    Crawler(bronze_lake, bronze_catalog, DB).crawl([LEGACY_TARGET, NEW_SYSTEM_TARGET])

    def catalog_files() -> list[tuple[str, int, bytes]]:
        files = sorted(bronze_catalog.path.parent.glob(bronze_catalog.path.name + "*"))
        return [(f.name, f.stat().st_mtime_ns, f.read_bytes()) for f in files if not f.name.endswith(".lock")]

    before = catalog_files()
    again = Crawler(bronze_lake, LocalCatalog(bronze_catalog.path), DB).crawl([LEGACY_TARGET, NEW_SYSTEM_TARGET])
    assert {crawl.action for crawl in again.tables} == {UNCHANGED}
    assert [name for name, _, _ in before] == [bronze_catalog.path.name] and catalog_files() == before


def test_a_rebuilt_partition_updates_its_statistics(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog, bronze_samples: BronzeSamples
) -> None:
    crawler = Crawler(bronze_store, bronze_catalog, DB)
    bronze_publish(bronze_store, bronze_samples.legacy_v2_2013)
    crawler.crawl([LEGACY_TARGET])
    bronze_publish(bronze_store, bronze_samples.legacy_v2_2013, file_name="part-00001.parquet")

    crawl = crawler.crawl([LEGACY_TARGET]).table(LEGACY)

    (partition,) = bronze_catalog.get_partitions(DB, LEGACY)
    assert (crawl.action, crawl.partitions_updated) == (UPDATED, [("2013",)])
    assert partition["Parameters"]["recordCount"] == str(2 * bronze_samples.legacy_v2_2013.rows)
    assert partition["Parameters"]["objectCount"] == "2"


def test_int_and_float_types_widen_as_athena_reads_them(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    prefix = "bronze/boston311/measures/"
    put_parquet(
        bronze_store,
        prefix + "year=2020/part-00000.parquet",
        {"count": pa.array([1], pa.int32()), "ratio": pa.array([0.5], pa.float32())},
    )
    crawler = Crawler(bronze_store, bronze_catalog, DB)
    first = crawler.crawl([("measures", prefix)]).table("measures")
    put_parquet(
        bronze_store,
        prefix + "year=2021/part-00000.parquet",
        {"count": pa.array([2], pa.int64()), "ratio": pa.array([0.25], pa.float64())},
    )

    second = crawler.crawl([("measures", prefix)]).table("measures")

    partitions = {
        p["Values"][0]: column_types(p["StorageDescriptor"]) for p in bronze_catalog.get_partitions(DB, "measures")
    }
    assert column_types(bronze_catalog.get_table(DB, "measures")["StorageDescriptor"]) == {
        "count": "bigint",
        "ratio": "double",
    }
    assert partitions == {"2020": {"count": "int", "ratio": "float"}, "2021": {"count": "bigint", "ratio": "double"}}
    assert first.columns_added == ["count", "ratio"]
    assert second.columns_retyped == [("count", "int", "bigint"), ("ratio", "float", "double")]
    assert second.conflicts == []


def test_incompatible_types_are_reported_never_coerced(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = "bronze/boston311/wards/"
    put_parquet(bronze_store, prefix + "year=2021/part-00000.parquet", {"ward": pa.array([3], pa.int64())})
    crawler = Crawler(bronze_store, bronze_catalog, DB)
    crawler.crawl([("wards", prefix)])
    put_parquet(bronze_store, prefix + "year=2020/part-00000.parquet", {"ward": pa.array(["Ward 3"])})

    with caplog.at_level(logging.WARNING):
        crawl = crawler.crawl([("wards", prefix)]).table("wards")

    (conflict,) = crawl.conflicts
    assert conflict.column == "ward"
    assert conflict.partitions_by_type == {"string": [("2020",)], "bigint": [("2021",)]}
    assert conflict.table_type == "bigint", "the table keeps the type it had"
    assert column_types(bronze_catalog.get_table(DB, "wards")["StorageDescriptor"]) == {"ward": "bigint"}
    (new_partition,) = bronze_catalog.get_partitions(DB, "wards", ["2020"])
    assert column_types(new_partition["StorageDescriptor"]) == {"ward": "string"}
    assert "column ward: string in 2020; bigint in 2021; the table keeps bigint" in caplog.text
    assert "conflict: column ward" in crawl.summary()


def test_a_new_conflicting_column_takes_the_type_of_the_first_partition(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    prefix = "bronze/boston311/wards/"
    put_parquet(bronze_store, prefix + "year=2020/part-00000.parquet", {"ward": pa.array(["03"])})
    put_parquet(bronze_store, prefix + "year=2020/part-00001.parquet", {"ward": pa.array([3.0])})
    put_parquet(bronze_store, prefix + "year=2021/part-00000.parquet", {"ward": pa.array([True])})

    crawl = Crawler(bronze_store, bronze_catalog, DB).crawl([("wards", prefix)]).table("wards")

    (conflict,) = crawl.conflicts
    assert conflict.partitions_by_type == {"string": [("2020",)], "double": [("2020",)], "boolean": [("2021",)]}
    assert column_types(bronze_catalog.get_table(DB, "wards")["StorageDescriptor"]) == {"ward": "string"}


def test_a_vanished_partition_is_removed_and_columns_go_with_the_last_partition_that_had_them(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    crawler = Crawler(bronze_lake, bronze_catalog, DB)
    crawler.crawl([LEGACY_TARGET])

    bronze_lake.delete(layout.bronze_data_key(LEGACY, 2013))
    without_2013 = crawler.crawl([LEGACY_TARGET]).table(LEGACY)
    columns_after_2013 = set(column_names(bronze_catalog.get_table(DB, LEGACY)["StorageDescriptor"]))
    bronze_lake.delete(layout.bronze_data_key(LEGACY, 2023))
    without_v2 = crawler.crawl([LEGACY_TARGET]).table(LEGACY)

    assert without_2013.partitions_removed == [("2013",)]
    assert V2_ONLY <= columns_after_2013, "2023 still has the v2 columns"
    assert without_2013.columns_removed == []
    assert without_v2.partitions_removed == [("2023",)]
    assert set(without_v2.columns_removed) == V2_ONLY
    assert partition_values(bronze_catalog, LEGACY) == [["2022"]]
    assert without_v2.version_id == "3"


def test_delete_behavior_log_keeps_vanished_partitions_and_says_so(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    Crawler(bronze_lake, bronze_catalog, DB).crawl([LEGACY_TARGET])
    bronze_lake.delete(layout.bronze_data_key(LEGACY, 2013))

    crawl = (
        Crawler(bronze_lake, bronze_catalog, DB, SchemaChangePolicy(delete_behavior=LOG))
        .crawl([LEGACY_TARGET])
        .table(LEGACY)
    )

    assert partition_values(bronze_catalog, LEGACY) == [["2013"], ["2022"], ["2023"]]
    assert crawl.partitions_removed == []
    assert any("partitions 2013 hold no data" in change for change in crawl.logged_changes)


def test_a_table_without_data_is_deprecated_by_default_and_revived_by_new_data(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog, bronze_samples: BronzeSamples
) -> None:
    crawler = Crawler(bronze_store, bronze_catalog, DB)
    key = bronze_publish(bronze_store, bronze_samples.legacy_v2_2013)
    crawler.crawl([LEGACY_TARGET])
    bronze_store.delete(key)

    before = int(time.time() * 1000)
    gone = crawler.crawl([LEGACY_TARGET]).table(LEGACY)
    after = int(time.time() * 1000)
    still_gone = crawler.crawl([LEGACY_TARGET]).table(LEGACY)
    deprecated = bronze_catalog.get_table(DB, LEGACY)
    bronze_publish(bronze_store, bronze_samples.legacy_v2_2013)
    back = crawler.crawl([LEGACY_TARGET]).table(LEGACY)

    assert (gone.action, gone.version_id, gone.partitions_removed) == (DEPRECATED, "2", [("2013",)])
    assert before <= int(deprecated["Parameters"][DEPRECATED_BY_CRAWLER]) <= after
    assert (still_gone.action, still_gone.version_id) == (UNCHANGED, "2")
    assert (back.action, back.version_id, back.partitions_added) == (UPDATED, "3", [("2013",)])
    assert DEPRECATED_BY_CRAWLER not in bronze_catalog.get_table(DB, LEGACY)["Parameters"]


def test_delete_behavior_delete_from_database_drops_a_table_without_data(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog, bronze_samples: BronzeSamples
) -> None:
    Crawler(bronze_lake, bronze_catalog, DB).crawl([NEW_SYSTEM_TARGET])
    for sample in bronze_samples.new_system:
        bronze_lake.delete(layout.bronze_data_key(NEW_SYSTEM, sample.year))

    policy = SchemaChangePolicy(delete_behavior=DELETE_FROM_DATABASE)
    crawl = Crawler(bronze_lake, bronze_catalog, DB, policy).crawl([NEW_SYSTEM_TARGET]).table(NEW_SYSTEM)

    assert (crawl.action, crawl.version_id) == (DELETED, None)
    assert crawl.partitions_removed == [("2025",), ("2026",)]
    assert bronze_catalog.get_table(DB, NEW_SYSTEM) is None


def test_delete_behavior_log_keeps_a_table_without_data(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog, bronze_samples: BronzeSamples
) -> None:
    Crawler(bronze_lake, bronze_catalog, DB).crawl([NEW_SYSTEM_TARGET])
    for sample in bronze_samples.new_system:
        bronze_lake.delete(layout.bronze_data_key(NEW_SYSTEM, sample.year))

    policy = SchemaChangePolicy(delete_behavior=LOG)
    crawl = Crawler(bronze_lake, bronze_catalog, DB, policy).crawl([NEW_SYSTEM_TARGET]).table(NEW_SYSTEM)

    assert (crawl.action, crawl.version_id) == (UNCHANGED, "1")
    assert partition_values(bronze_catalog, NEW_SYSTEM) == [["2025"], ["2026"]]
    assert DEPRECATED_BY_CRAWLER not in bronze_catalog.get_table(DB, NEW_SYSTEM)["Parameters"]
    assert any("holds no data any more" in change for change in crawl.logged_changes)


def test_a_prefix_that_never_held_data_creates_no_table(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    crawl = Crawler(bronze_store, bronze_catalog, DB).crawl([NEW_SYSTEM_TARGET]).table(NEW_SYSTEM)

    assert (crawl.action, crawl.version_id) == (NO_DATA, None)
    assert bronze_catalog.list_tables(DB) == []


def test_update_behavior_log_leaves_the_table_but_adds_new_partitions(
    bronze_store: LocalObjectStore,
    bronze_catalog: LocalCatalog,
    bronze_samples: BronzeSamples,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    Crawler(bronze_store, bronze_catalog, DB).crawl([LEGACY_TARGET])
    table_before = bronze_catalog.get_table(DB, LEGACY)
    (partition_2022_before,) = bronze_catalog.get_partitions(DB, LEGACY, ["2022"])
    bronze_publish(bronze_store, bronze_samples.legacy_v2_2013)
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022, file_name="part-00001.parquet")

    logging_crawler = Crawler(bronze_store, bronze_catalog, DB, SchemaChangePolicy(update_behavior=LOG))
    with caplog.at_level(logging.WARNING):
        crawl = logging_crawler.crawl([LEGACY_TARGET]).table(LEGACY)

    assert bronze_catalog.get_table(DB, LEGACY) == table_before
    assert (crawl.action, crawl.version_id) == (UNCHANGED, "1")
    assert crawl.partitions_added == [("2013",)]
    assert crawl.partitions_updated == []
    assert bronze_catalog.get_partitions(DB, LEGACY, ["2022"]) == [partition_2022_before]
    (table_change, partition_change) = crawl.logged_changes
    assert "add columns" in table_change and "sla_target_dt" in table_change and "recordCount" in table_change
    assert "partitions 2022 changed" in partition_change
    assert "sla_target_dt" in caplog.text


def test_objects_that_are_not_data_are_not_crawled(
    bronze_store: LocalObjectStore,
    bronze_catalog: LocalCatalog,
    bronze_samples: BronzeSamples,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bronze_publish(bronze_store, bronze_samples.legacy_v2_2013)
    partition = layout.bronze_partition_prefix(LEGACY, 2013)
    for bookkeeping in (
        "_rejects.csv",
        "_manifest.json",
        "_SUCCESS",
        ".staging/abc.parquet",
        "_history/20240101/part-00000.parquet",
        ".part-00001.parquet.crc",
    ):
        bronze_store.put_bytes(partition + bookkeeping, b"not data")
    bronze_store.put_bytes(layout.bronze_table_prefix(LEGACY) + "_unassigned/part-00000.parquet", b"not data")
    bronze_store.put_bytes(partition + "notes.txt", b"a stray file")
    bronze_store.put_bytes(partition + "part-00002.parquet.tmp", b"half written")

    with caplog.at_level(logging.WARNING):
        crawl = Crawler(bronze_store, bronze_catalog, DB).crawl([LEGACY_TARGET]).table(LEGACY)

    (only,) = bronze_catalog.get_partitions(DB, LEGACY)
    assert only["Parameters"]["objectCount"] == "1"
    assert only["Parameters"]["recordCount"] == str(bronze_samples.legacy_v2_2013.rows)
    assert crawl.skipped_objects == [partition + "notes.txt", partition + "part-00002.parquet.tmp"]
    assert "notes.txt: not a Parquet file" in caplog.text


@pytest.mark.parametrize(
    ("relative_key", "kind"),
    [
        ("year=2013/part-00000.parquet", "data"),
        ("part-00000.parquet", "data"),
        ("year=2013/", "bookkeeping"),
        ("year=2013_$folder$", "bookkeeping"),
        ("year=2013/_rejects.csv", "bookkeeping"),
        ("year=2013/_manifest.json", "bookkeeping"),
        ("year=2013/_SUCCESS", "bookkeeping"),
        ("_history/2024/year=2013/part-00000.parquet", "bookkeeping"),
        ("year=2013/.staging/x.parquet", "bookkeeping"),
        ("year=2013/part-00000.csv", "foreign"),
        ("year=2013/part-00000.parquet.tmp", "foreign"),
    ],
)
def test_objects_are_classified_like_a_glue_crawler_does(relative_key: str, kind: str) -> None:
    assert classify_object(relative_key) == kind


def test_a_damaged_partition_is_reported_and_left_as_it_was_while_the_others_register(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog, bronze_samples: BronzeSamples
) -> None:
    Crawler(bronze_lake, bronze_catalog, DB).crawl([NEW_SYSTEM_TARGET])
    registered = {p["Values"][0]: p for p in bronze_catalog.get_partitions(DB, NEW_SYSTEM)}
    broken = layout.bronze_partition_prefix(NEW_SYSTEM, 2026) + "part-00001.parquet"
    bronze_lake.put_bytes(broken, b"PAR1 this is no parquet footer")

    result = Crawler(bronze_lake, bronze_catalog, DB).crawl([LEGACY_TARGET, NEW_SYSTEM_TARGET])

    crawl = result.table(NEW_SYSTEM)
    assert list(crawl.damaged) == [("2026",)]
    assert f"{bronze_lake.uri(broken)} is not a readable Parquet file" in crawl.damaged[("2026",)]
    assert "damaged, left as it was: 2026: " in crawl.summary()
    assert crawl.record_count == sum(sample.rows for sample in bronze_samples.new_system)  # 2026 still counted
    after = {p["Values"][0]: p for p in bronze_catalog.get_partitions(DB, NEW_SYSTEM)}
    assert after["2026"] == registered["2026"]  # neither rewritten nor removed
    assert crawl.partitions_removed == []
    assert {p["Values"][0] for p in bronze_catalog.get_partitions(DB, LEGACY)} == {"2013", "2022", "2023"}


def test_files_at_different_depths_are_refused(bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog) -> None:
    stray = layout.bronze_table_prefix(LEGACY) + "part-00000.parquet"
    put_parquet(bronze_lake, stray, {"case_enquiry_id": pa.array([1])})

    with pytest.raises(CrawlError, match=r"table legacy_requests: data files sit at different folder depths"):
        Crawler(bronze_lake, bronze_catalog, DB).crawl([LEGACY_TARGET])


def test_a_column_named_like_a_partition_key_is_refused(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    key = "bronze/boston311/yearly/year=2020/part-00000.parquet"
    put_parquet(bronze_store, key, {"year": pa.array([2020])})

    with pytest.raises(CrawlError, match=f"{bronze_store.uri(key)} has a column 'year'"):
        Crawler(bronze_store, bronze_catalog, DB).crawl([("yearly", "bronze/boston311/yearly/")])


def test_a_column_type_athena_lacks_is_refused_with_its_file(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    key = "bronze/boston311/times/year=2020/part-00000.parquet"
    put_parquet(bronze_store, key, {"opened": pa.array([1], pa.time32("s"))})

    with pytest.raises(CrawlError, match=f"{bronze_store.uri(key)}: column 'opened'.*time32"):
        Crawler(bronze_store, bronze_catalog, DB).crawl([("times", "bronze/boston311/times/")])


def test_folders_that_are_not_hive_style_become_numbered_keys(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    prefix = "bronze/boston311/exports/"
    put_parquet(bronze_store, prefix + "2020/01/part-00000.parquet", {"n": pa.array([1])})
    put_parquet(bronze_store, prefix + "2020/02/part-00000.parquet", {"n": pa.array([2])})
    put_parquet(bronze_store, prefix + "2021/01/part-00000.parquet", {"n": pa.array([3])})

    Crawler(bronze_store, bronze_catalog, DB).crawl([("exports", prefix)])

    table = bronze_catalog.get_table(DB, "exports")
    assert table["PartitionKeys"] == [
        {"Name": "partition_0", "Type": "string"},
        {"Name": "partition_1", "Type": "string"},
    ]
    assert partition_values(bronze_catalog, "exports") == [["2020", "01"], ["2020", "02"], ["2021", "01"]]


def test_files_without_folders_make_an_unpartitioned_table(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    prefix = "bronze/boston311/flat/"
    put_parquet(bronze_store, prefix + "part-00000.parquet", {"n": pa.array([1, 2])})

    Crawler(bronze_store, bronze_catalog, DB).crawl([("flat", prefix)])

    table = bronze_catalog.get_table(DB, "flat")
    assert table["PartitionKeys"] == []
    assert table["Parameters"]["recordCount"] == "2"
    assert bronze_catalog.get_partitions(DB, "flat") == []


def test_many_partitions_are_written_in_batches_within_glues_limits(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    prefix = "bronze/boston311/days/"
    keys = [f"{prefix}day={day:03d}/part-00000.parquet" for day in range(130)]
    for key in keys:
        put_parquet(bronze_store, key, {"n": pa.array([1])})
    crawler = Crawler(bronze_store, bronze_catalog, DB)
    created = crawler.crawl([("days", prefix)]).table("days")
    for key in keys:
        bronze_store.delete(key)

    removed = crawler.crawl([("days", prefix)]).table("days")

    assert len(created.partitions_added) == 130
    assert len(removed.partitions_removed) == 130
    assert bronze_catalog.get_partitions(DB, "days") == []


def test_a_second_crawl_while_one_runs_is_refused(bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog) -> None:
    holding, release = threading.Event(), threading.Event()

    def crawl_in_progress() -> None:
        with bronze_catalog.crawl_lock("nightly_crawler"):
            holding.set()
            release.wait(timeout=30)

    other = threading.Thread(target=crawl_in_progress)
    other.start()
    try:
        assert holding.wait(timeout=30)
        with pytest.raises(CrawlerRunning, match="nightly_crawler"):
            Crawler(bronze_lake, bronze_catalog, DB).crawl([LEGACY_TARGET])
    finally:
        release.set()
        other.join()
    assert bronze_catalog.list_databases() == [], "the refused crawl wrote nothing"


def test_bad_settings_are_named(bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog) -> None:
    with pytest.raises(CrawlError, match="UpdateBehavior 'MERGE'"):
        SchemaChangePolicy(update_behavior="MERGE")
    with pytest.raises(CrawlError, match="DeleteBehavior 'IGNORE'"):
        SchemaChangePolicy(delete_behavior="IGNORE")
    crawler = Crawler(bronze_store, bronze_catalog, DB)
    with pytest.raises(CrawlError, match="prefix 'bronze/boston311/legacy_requests' must be"):
        crawler.crawl([(LEGACY, "bronze/boston311/legacy_requests")])
    with pytest.raises(CrawlError, match="'Legacy Requests'"):
        crawler.crawl([("Legacy Requests", "bronze/x/")])
    with pytest.raises(CrawlError, match="more than once"):
        crawler.crawl([LEGACY_TARGET, LEGACY_TARGET])


def test_the_summary_names_tables_actions_and_partitions(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    result = Crawler(bronze_lake, bronze_catalog, DB).crawl([LEGACY_TARGET, NEW_SYSTEM_TARGET])

    summary = result.summary()

    assert summary.startswith("crawler boston311-bronze -> database boston311: 2 tables")
    assert "legacy_requests: created (version 1), 1500 rows; partitions added 2013, 2022, 2023; 34 columns" in summary
    assert "new_system_requests: created (version 1)" in summary
    assert result.duration_seconds > 0
