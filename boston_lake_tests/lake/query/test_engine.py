from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.catalog import GlueDict
from boston_lake.lake.catalog.crawler import Crawler
from boston_lake.lake.catalog.local import LocalCatalog
from boston_lake.lake.query.engine import DuckDBQueryEngine, QueryError
from boston_lake.lake.stores import LocalObjectStore
from boston_lake_tests.support.bronze_samples import BronzeSamples

DB = "boston311"
LEGACY = "legacy_requests"
NEW_SYSTEM = "new_system_requests"
TARGETS = [(LEGACY, layout.bronze_table_prefix(LEGACY)), (NEW_SYSTEM, layout.bronze_table_prefix(NEW_SYSTEM))]


@pytest.fixture
def engine(bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog) -> Iterator[DuckDBQueryEngine]:
    Crawler(bronze_lake, bronze_catalog, DB).crawl(TARGETS)
    with DuckDBQueryEngine(bronze_catalog, bronze_lake) as engine:
        yield engine


def counts_by_year(engine: DuckDBQueryEngine, table: str) -> dict[str, int]:
    result = engine.query(f"SELECT year, count(*) AS n FROM boston311.{table} GROUP BY year ORDER BY year")
    return dict(zip(result["year"].to_pylist(), result["n"].to_pylist(), strict=True))


def test_rows_per_year_are_the_bronze_rows(engine: DuckDBQueryEngine, bronze_samples: BronzeSamples) -> None:
    assert counts_by_year(engine, LEGACY) == {str(s.year): s.rows for s in bronze_samples.legacy}
    assert counts_by_year(engine, NEW_SYSTEM) == {str(s.year): s.rows for s in bronze_samples.new_system}


def test_a_table_has_the_columns_of_every_generation_and_a_string_year(engine: DuckDBQueryEngine) -> None:
    result = engine.query(
        "SELECT year, count(target_dt) AS v1_targets, count(sla_target_dt) AS v2_targets, "
        "count(geom_4326) AS v2_geometries FROM boston311.legacy_requests GROUP BY year ORDER BY year"
    )
    rows = {row["year"]: row for row in result.to_pylist()}

    assert result.schema.field("year").type == pa.string()
    assert rows["2022"]["v1_targets"] > 0 and rows["2022"]["v2_targets"] == rows["2022"]["v2_geometries"] == 0
    assert rows["2013"]["v1_targets"] == 0 and rows["2013"]["v2_targets"] > 0
    assert rows["2023"]["v1_targets"] == 0 and rows["2023"]["v2_geometries"] > 0


def test_values_are_the_bronze_values(engine: DuckDBQueryEngine, bronze_samples: BronzeSamples) -> None:
    expected = pq.read_table(bronze_samples.legacy_v2_2013.path, columns=["case_enquiry_id", "location_zipcode"])

    result = engine.query(
        "SELECT case_enquiry_id, location_zipcode FROM boston311.legacy_requests WHERE year = '2013' "
        "ORDER BY case_enquiry_id"
    )

    assert result.to_pylist() == expected.sort_by("case_enquiry_id").to_pylist()


def test_timestamps_with_a_time_zone_stay_in_utc(engine: DuckDBQueryEngine, bronze_samples: BronzeSamples) -> None:
    expected = pq.read_table(bronze_samples.new_system_2025.path, columns=["open_date"])["open_date"]

    result = engine.query("SELECT min(open_date) AS first FROM boston311.new_system_requests WHERE year = '2025'")

    assert result["first"].to_pylist() == [min(expected.to_pylist())]


def test_a_partition_removed_from_the_catalog_disappears_though_its_files_remain(
    engine: DuckDBQueryEngine, bronze_catalog: LocalCatalog, bronze_lake: LocalObjectStore
) -> None:
    bronze_catalog.batch_delete_partitions(DB, LEGACY, [["2013"]])

    assert bronze_lake.exists(layout.bronze_data_key(LEGACY, 2013))
    assert set(counts_by_year(engine, LEGACY)) == {"2022", "2023"}


def test_a_year_rewritten_in_place_is_read_anew_by_the_same_engine(
    engine: DuckDBQueryEngine, bronze_lake: LocalObjectStore, bronze_samples: BronzeSamples
) -> None:
    """Footers are cached between queries; a rewritten file must not be read through its old footer."""
    key = layout.bronze_data_key(LEGACY, 2013)
    assert counts_by_year(engine, LEGACY)["2013"] == bronze_samples.legacy_v2_2013.rows
    with bronze_lake.writing(key) as staged:
        pq.write_table(pq.read_table(bronze_samples.legacy_v2_2013.path).slice(0, 3), staged)

    assert counts_by_year(engine, LEGACY)["2013"] == 3
    assert engine.query(
        "SELECT count(DISTINCT case_enquiry_id) AS n FROM boston311.legacy_requests WHERE year = '2013'"
    )["n"].to_pylist() == [3]


def test_only_crawled_tables_are_queryable(bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog) -> None:
    Crawler(bronze_lake, bronze_catalog, DB).crawl(TARGETS[:1])
    engine = DuckDBQueryEngine(bronze_catalog, bronze_lake)

    with pytest.raises(QueryError, match=r"(?s)new_system_requests.*known tables: boston311\.legacy_requests\n"):
        engine.query("SELECT count(*) FROM boston311.new_system_requests")


def test_a_crawl_after_the_engine_started_is_seen_at_once(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog, bronze_samples: BronzeSamples
) -> None:
    engine = DuckDBQueryEngine(bronze_catalog, bronze_lake)
    with pytest.raises(QueryError, match=r"known tables: none \(run the crawler first\)"):
        engine.query("SELECT count(*) FROM boston311.legacy_requests")

    Crawler(bronze_lake, bronze_catalog, DB).crawl(TARGETS)

    assert engine.query("SELECT count(*) AS n FROM boston311.legacy_requests")["n"].to_pylist() == [
        sum(s.rows for s in bronze_samples.legacy)
    ]


def test_a_query_of_one_table_leaves_the_others_listed_and_queryable(
    engine: DuckDBQueryEngine, bronze_samples: BronzeSamples
) -> None:
    """A query binds only the tables it names; SHOW TABLES and a query of the others still see every table."""
    assert engine.query(f"SELECT count(*) AS n FROM boston311.{LEGACY}")["n"].to_pylist() == [
        sum(s.rows for s in bronze_samples.legacy)
    ]
    assert sorted(engine.query("SHOW TABLES")["name"].to_pylist()) == [LEGACY, NEW_SYSTEM]
    assert engine.query(f"SELECT count(*) AS n FROM {NEW_SYSTEM}")["n"].to_pylist() == [
        sum(s.rows for s in bronze_samples.new_system)
    ]


def test_every_query_binds_only_the_tables_it_names_not_just_the_first(
    bronze_lake: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    """Once a query has created the views, the next ones still find which tables they name: the other table's
    partitions are never listed for them."""
    Crawler(bronze_lake, bronze_catalog, DB).crawl(TARGETS)
    listed: list[str] = []
    list_partitions = bronze_catalog.get_partitions

    def counted(database: str, table: str, years: Iterable[str] | None = None) -> list[GlueDict]:
        listed.append(table)
        return list_partitions(database, table, years)

    bronze_catalog.get_partitions = counted  # type: ignore[method-assign]
    with DuckDBQueryEngine(bronze_catalog, bronze_lake) as engine:
        for _ in range(3):
            engine.query(f"SELECT count(*) FROM boston311.{LEGACY}")

    assert listed == [LEGACY] * 3


def test_errors_in_sql_carry_the_sql(engine: DuckDBQueryEngine) -> None:
    with pytest.raises(QueryError, match=r"(?s)^Parser Error.*SQL: SELEC year FROM x"):
        engine.query("SELEC year FROM x")


def test_partitions_with_narrower_types_are_read_as_the_table_type(
    bronze_store: LocalObjectStore, bronze_catalog: LocalCatalog
) -> None:
    prefix = "bronze/boston311/measures/"
    for year, arrow_type in (("2020", pa.int32()), ("2021", pa.int64())):
        with bronze_store.writing(f"{prefix}year={year}/part-00000.parquet") as path:
            pq.write_table(pa.table({"count": pa.array([int(year)], arrow_type)}), path)
    with bronze_store.writing(f"{prefix}year=2021/part-00001.parquet") as path:
        pq.write_table(pa.table({"label": pa.array(["only here"])}), path)
    Crawler(bronze_store, bronze_catalog, DB).crawl([("measures", prefix)])

    result = DuckDBQueryEngine(bronze_catalog, bronze_store).query(
        "SELECT year, count, label FROM boston311.measures ORDER BY year, count NULLS LAST"
    )

    assert result.schema.field("count").type == pa.int64()
    assert result.to_pylist() == [
        {"year": "2020", "count": 2020, "label": None},
        {"year": "2021", "count": 2021, "label": None},
        {"year": "2021", "count": None, "label": "only here"},
    ]


def test_a_deprecated_table_is_empty_with_its_columns(
    engine: DuckDBQueryEngine,
    bronze_lake: LocalObjectStore,
    bronze_catalog: LocalCatalog,
    bronze_samples: BronzeSamples,
) -> None:
    for sample in bronze_samples.new_system:
        bronze_lake.delete(layout.bronze_data_key(NEW_SYSTEM, sample.year))
    Crawler(bronze_lake, bronze_catalog, DB).crawl(TARGETS)

    result = engine.query("SELECT case_id, year FROM boston311.new_system_requests")

    assert result.num_rows == 0
    assert result.schema.names == ["case_id", "year"]


def test_a_table_with_a_location_outside_the_store_is_named_and_others_still_work(
    engine: DuckDBQueryEngine, bronze_catalog: LocalCatalog, bronze_samples: BronzeSamples
) -> None:
    table = bronze_catalog.get_table(DB, NEW_SYSTEM)
    moved = {key: table[key] for key in ("Name", "StorageDescriptor", "PartitionKeys", "TableType", "Parameters")}
    moved["StorageDescriptor"] = {**moved["StorageDescriptor"], "Location": "/somewhere/else/"}
    moved["PartitionKeys"] = []
    bronze_catalog.update_table(DB, moved)

    with pytest.raises(
        QueryError, match=r"boston311\.new_system_requests is not queryable: .*/somewhere/else/ is outside"
    ):
        engine.query("SELECT count(*) FROM boston311.new_system_requests")
    assert counts_by_year(engine, LEGACY) == {str(s.year): s.rows for s in bronze_samples.legacy}


def test_files_that_no_longer_match_the_catalog_ask_for_a_recrawl(
    engine: DuckDBQueryEngine,
    bronze_lake: LocalObjectStore,
    bronze_catalog: LocalCatalog,
    bronze_samples: BronzeSamples,
) -> None:
    assert counts_by_year(engine, LEGACY)["2013"] == bronze_samples.legacy_v2_2013.rows
    bronze_lake.publish(bronze_samples.legacy_v1_2022.path, layout.bronze_data_key(LEGACY, 2013))

    with pytest.raises(
        QueryError, match=r"legacy_requests year=2013: its files do not match the catalog .*; recrawl it"
    ):
        engine.query("SELECT count(*) FROM boston311.legacy_requests")
    other_years = engine.query("SELECT count(*) AS n FROM boston311.legacy_requests WHERE year <> '2013'")
    assert other_years["n"].to_pylist() == [bronze_samples.legacy_v1_2022.rows + bronze_samples.legacy_v2_2023.rows]
    assert engine.query("SELECT count(*) AS n FROM boston311.new_system_requests")["n"].to_pylist() == [
        sum(s.rows for s in bronze_samples.new_system)
    ]
    Crawler(bronze_lake, bronze_catalog, DB).crawl(TARGETS)
    assert counts_by_year(engine, LEGACY)["2013"] == bronze_samples.legacy_v1_2022.rows
