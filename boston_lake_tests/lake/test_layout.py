"""A catalog table's location as the tools people already use read it, with their defaults, on both targets.

The lake (support/client_lake.py): legacy_requests 2013, 2022 and 2023 in two schema generations, with manifests
and rejects, built by the raw and bronze zones and crawled: the local folder with its embedded catalog, and S3 with
the Glue Data Catalog (the moto server). Each client reads every row of `boston311.legacy_requests`, and each
column it reads has the catalog's type:

- awswrangler `wr.s3.read_parquet_table`, its defaults but `validate_schema=False` (bronze keeps each file's own
  columns; the Glue table carries the merged schema). On AWS only: it reads S3 objects through the Glue catalog
  and has no mode for a local folder and an embedded catalog.
- `pyarrow.dataset.dataset` over the table's location, its defaults (the first file's schema, no partitioning).
- DuckDB `read_parquet` of every object in each partition folder (`*/*`), with `hive_partitioning` (and
  `union_by_name`, as two generations have different columns). On S3 DuckDB would read through its httpfs
  extension, which is a download DuckDB makes at run time, not a package: the tests cannot install it, so DuckDB
  reads S3 through pyarrow's S3 filesystem registered with it (fsspec), which lists and reads the same objects.
- Spark `spark.read.parquet` on the location (the spark tier; S3A on S3, with the jars of the spark tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from fsspec.implementations.arrow import ArrowFSWrapper

from boston_lake.lake import layout
from boston_lake.lake.tables import DATABASE, LEGACY_REQUESTS
from boston_lake.lake.zones.bronze import BronzeZone
from boston_lake_tests.support.client_lake import LOG, TABLE, YEARS, BuiltLake
from boston_lake_tests.support.spark_glue import spark_submit_args


# Building the lake on S3 and Glue costs seconds: the aws target is in the slow tier.
@pytest.fixture(params=["local", pytest.param("aws", marks=pytest.mark.slow)])
def lake(request: pytest.FixtureRequest) -> BuiltLake:
    lake: BuiltLake = request.getfixturevalue(f"{request.param}_lake")
    return lake


def filesystem_of(lake: BuiltLake) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for the location, found from the URI alone as a user's code finds it."""
    filesystem, path = pafs.FileSystem.from_uri(lake.location)
    return filesystem, path.rstrip("/") + "/"


def test_the_table_location_holds_data_files_only(lake: BuiltLake) -> None:
    filesystem, path = filesystem_of(lake)
    found = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    files = sorted(info.path.removeprefix(path) for info in found if info.type == pafs.FileType.File)
    assert files == [f"year={year}/{layout.BRONZE_FILE}" for year in YEARS]


@pytest.mark.slow
def test_awswrangler_reads_the_glue_table_with_its_defaults(aws_lake: BuiltLake) -> None:
    import awswrangler as wr

    frame = wr.s3.read_parquet_table(table=TABLE, database=DATABASE, validate_schema=False)
    aws_lake.assert_read(pa.Table.from_pandas(frame, preserve_index=False))


def test_pyarrow_dataset_reads_the_location_with_its_defaults(lake: BuiltLake) -> None:
    filesystem, path = filesystem_of(lake)
    dataset = ds.dataset(path, filesystem=filesystem)
    lake.assert_read(dataset.to_table(), partition_type=None)


def duckdb_read(lake: BuiltLake) -> pa.Table:
    """Every object of every partition folder (`*/*`), Hive values as columns."""
    connection = duckdb.connect()
    filesystem, _ = filesystem_of(lake)
    if not isinstance(filesystem, pafs.LocalFileSystem):
        connection.register_filesystem(ArrowFSWrapper(filesystem))
    every_object = lake.location.rstrip("/") + "/*/*"
    sql = f"SELECT * FROM read_parquet('{every_object}', hive_partitioning = true, union_by_name = true)"
    return connection.sql(sql).to_arrow_table()


def test_duckdb_reads_every_object_under_the_location_with_hive_partitioning(lake: BuiltLake) -> None:
    table = duckdb_read(lake)
    lake.assert_read(table, partition_type="bigint")  # DuckDB types a Hive value that reads as a number as one
    assert sorted(set(table.column("year").to_pylist())) == YEARS


def test_a_lake_laid_out_before_meta_trips_a_client_until_a_normal_run_of_a_year_moves_the_tables_bookkeeping(
    local_lake: BuiltLake,
) -> None:
    store = local_lake.target.lake_zone()
    for year in YEARS:
        for key in layout.bronze_bookkeeping_keys(TABLE, year):
            if store.exists(key):
                store.copy(key, layout.before_meta(key))
                store.delete(key)
    with pytest.raises(duckdb.Error, match="_manifest.json"):
        duckdb_read(local_lake)
    assert not BronzeZone(store, store, LOG).build(LEGACY_REQUESTS, YEARS[-1]).changed  # a run of one year
    local_lake.assert_read(duckdb_read(local_lake), partition_type="bigint")


SPARK_READ = """
import json, sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
frame = spark.read.parquet(sys.argv[1])
print(json.dumps({"rows": frame.count(), "types": {f.name: f.dataType.simpleString() for f in frame.schema.fields}}))
spark.stop()
"""
SPARK_TO_GLUE = {"timestamp_ntz": "timestamp"}  # Spark's name for a timestamp without a time zone


def test_spark_reads_the_location(lake: BuiltLake, s3a_jars: list[Path]) -> None:
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")  # the moto server's, on the aws target
    environment = {**os.environ, "PYSPARK_SUBMIT_ARGS": spark_submit_args(s3a_jars, endpoint)}
    location = lake.location.replace("s3://", "s3a://", 1)
    result = subprocess.run(
        [sys.executable, "-c", SPARK_READ, location], env=environment, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-3000:]
    read: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert read["rows"] == lake.rows
    types = {name: SPARK_TO_GLUE.get(kind, kind) for name, kind in read["types"].items()}
    assert types == {name: {**lake.types, "year": "int"}[name] for name in types}  # Spark infers `year` an int
    assert len(types) >= 30
