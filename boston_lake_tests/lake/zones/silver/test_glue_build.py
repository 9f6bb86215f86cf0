"""Publishing what the Glue job staged, and knowing when a year need not run again: on a local store, with a
year DuckDB built standing in for the job's output (the Spark path itself is tested in defs/test_silver_glue)."""

import logging

import pytest

from boston_lake.lake import layout
from boston_lake.lake.zones.silver import glue_build
from boston_lake.lake.zones.silver.duckdb_build import SilverError, SilverZone
from boston_lake.lake.zones.silver.inputs import find_inputs
from boston_lake.lake.zones.silver.model import SILVER_TABLE, SILVER_ZONE
from boston_lake_tests.support.bronze_samples import bronze_publish

log = logging.getLogger("test_glue_build")


def staged_year(store, year):
    """A prepared run whose staging prefix holds one Parquet object of the year, as the job leaves it, and the
    report the job sends."""
    built = SilverZone(store, log).build(year)
    run = glue_build.prepare(store, year, "run-1")
    store.copy(built.key, run.staging_prefix + "part-00000-0.zstd.parquet")
    store.delete(built.key)
    return run, {"year": year, "rows": built.summary.rows, "ledger": built.ledger}


def test_a_published_year_is_current_until_its_bronze_or_its_object_changes(bronze_store, bronze_samples):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    run, report = staged_year(bronze_store, 2022)
    assert glue_build.current(bronze_store, run.inputs) is None  # nothing published yet
    published = glue_build.publish(bronze_store, run, report, log)
    assert published.changed and published.summary.rows == 100
    assert not list(bronze_store.list(run.staging_prefix))

    again = glue_build.current(bronze_store, find_inputs(bronze_store, 2022))
    assert again is not None and not again.changed
    assert again.ledger == published.ledger and again.summary == published.summary

    # A bronze neighbour lands: the inputs' fingerprint changes.
    bronze_publish(bronze_store, bronze_samples.legacy_v2_2023)
    assert glue_build.current(bronze_store, find_inputs(bronze_store, 2022)) is None


def test_a_year_replaced_behind_the_record_or_without_one_is_built_again(bronze_store, bronze_samples):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    run, report = staged_year(bronze_store, 2022)
    glue_build.publish(bronze_store, run, report, log)
    key = layout.data_key(SILVER_ZONE, SILVER_TABLE, 2022)
    inputs = find_inputs(bronze_store, 2022)

    bronze_store.put_bytes(key, bronze_store.get_bytes(key) + b"\0")  # another writer's object at the key
    assert glue_build.current(bronze_store, inputs) is None
    bronze_store.delete(glue_build.build_record_key(2022))
    assert glue_build.current(bronze_store, inputs) is None


def test_a_publish_that_finds_fewer_rows_than_reported_fails_and_leaves_no_record(bronze_store, bronze_samples):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    run, report = staged_year(bronze_store, 2022)
    with pytest.raises(SilverError, match=r"silver 2022: the Glue job reported 101 rows, .* holds 100"):
        glue_build.publish(bronze_store, run, {**report, "rows": 101}, log)
    assert not bronze_store.exists(glue_build.build_record_key(2022))
    assert glue_build.current(bronze_store, find_inputs(bronze_store, 2022)) is None
