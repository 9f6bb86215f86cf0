"""One SQL text, two engines: Spark (what the Glue job runs) and DuckDB give the same rows and types for samples
of all three schema generations. One local Spark session for the module, on one core, small data."""

import duckdb
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from boston_lake.lake.targets import LocalTarget
from boston_lake.lake.zones.silver.duckdb_build import SilverZone
from boston_lake.lake.zones.silver.inputs import find_inputs, spark_plan
from boston_lake.lake.zones.silver.model import DUCKDB_MACROS_SQL, SILVER_TABLE, statements
from boston_lake.lake.zones.silver.spark_job import spark_session, transform, write_one_file
from boston_lake_tests.support.bronze_samples import bronze_publish, listed_twice

# Starting a JVM and running Spark jobs takes minutes on a loaded 2-core machine, far beyond the default timeout.
pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]


class QuietLog:
    def info(self, msg, *args):
        pass

    def warning(self, msg, *args):
        pass


@pytest.fixture(scope="module")
def spark():

    # Settings for a small test on a shared machine; spark_session adds the ones the transform relies on.
    SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").config(
        "spark.sql.shuffle.partitions", "1"
    ).getOrCreate()
    session = spark_session()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def sorted_rows(table):
    return table.sort_by("case_id")


def assert_same_year(spark, lake, year, tmp_path):
    """Both engines build `year` of `lake`: the same rows, types and ledger."""
    built = SilverZone(LocalTarget(lake.root).iceberg(), QuietLog()).build(year)
    rows, ledger = transform(spark, spark_plan(find_inputs(lake, year), lambda key: str(lake.path(key))))
    out = tmp_path / f"spark_{year}"
    write_one_file(rows, str(out))
    (written,) = out.glob("part-*.parquet")
    from_spark = sorted_rows(pq.read_table(written))
    from_duckdb = sorted_rows(pq.read_table(lake.path(built.key)))
    assert [(f.name, f.type) for f in from_spark.schema] == [(f.name, f.type) for f in from_duckdb.schema], year
    assert ledger == built.ledger, year
    assert from_spark.num_rows == from_duckdb.num_rows == built.summary.rows
    for column in from_duckdb.column_names:
        assert from_spark[column].to_pylist() == from_duckdb[column].to_pylist(), (year, column)


@pytest.mark.parametrize("year", [2013, 2022, 2025], ids=["legacy_v2", "legacy_v1_beside_v2", "new_system"])
def test_duckdb_and_spark_give_the_same_rows_and_types_for_every_generation(spark, bronze_lake, tmp_path, year):
    assert_same_year(spark, bronze_lake, year, tmp_path)


def test_both_engines_pick_the_later_row_of_copies_that_tie(spark, bronze_store, bronze_samples, tmp_path):
    """Spark's _metadata.row_index and DuckDB's file_row_number number a file's rows alike."""
    bronze_publish(bronze_store, listed_twice(bronze_samples.legacy_v1_2022, tmp_path))
    assert_same_year(spark, bronze_store, 2022, tmp_path)
    tables = LocalTarget(bronze_store.root).iceberg()
    [published] = tables.keys_by_year(SILVER_TABLE)[2022]
    titles = pq.read_table(bronze_store.path(published))["case_title"]
    assert sum(str(title).startswith("listed again") for title in titles.to_pylist()) == 5


@pytest.mark.parametrize(
    "wall",
    [
        "2023-07-01 12:00:00",  # daylight time
        "2023-01-15 08:30:00",  # standard time
        "2023-03-12 02:30:00",  # the spring gap: both move forward by the gap
        "2023-11-05 01:30:00",  # the repeated autumn hour: Spark takes daylight time; the macro must too
        "2023-11-05 02:00:00",
    ],
)
def test_the_duckdb_macro_is_spark_to_utc_timestamp(spark, wall):
    # Compared as text in UTC: collecting a timestamp into Python would apply the machine's time zone.
    expected = spark.sql(
        f"SELECT CAST(to_utc_timestamp(TIMESTAMP_NTZ '{wall}', 'America/New_York') AS STRING) AS t"
    ).first()["t"]
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        for statement in statements(DUCKDB_MACROS_SQL):
            connection.execute(statement)
        (found,) = connection.execute(
            f"SELECT strftime(to_utc_timestamp(TIMESTAMP '{wall}', 'America/New_York'), '%Y-%m-%d %H:%M:%S')"
        ).fetchone()
    assert found == expected
