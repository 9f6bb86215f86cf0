"""Publishing what the Glue job staged, and knowing when a year need not run again: on a local store, with a
year DuckDB built standing in for the job's output (the Spark path itself is tested in defs/test_silver_glue)."""

import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.zones.publish import PublishRefused
from boston_lake.lake.zones.silver import glue_build
from boston_lake.lake.zones.silver.duckdb_build import LEDGER_FIELDS, SilverError, SilverZone
from boston_lake.lake.zones.silver.inputs import find_inputs
from boston_lake.lake.zones.silver.model import SILVER_TABLE, SILVER_ZONE
from boston_lake_tests.support.bronze_samples import bronze_publish

log = logging.getLogger("test_glue_build")


def glue_job_standing_in(store, year, rows=None):
    """What the Glue job does to a prepared run, stood in for by DuckDB: the year built, as one Parquet object under
    the run's staging prefix, and the report the job sends (`rows` overrides its row count)."""
    built = SilverZone(store, log).build(year)
    done = f"elsewhere/{year}.parquet"
    store.copy(built.key, done)
    store.delete(built.key)
    report = {"year": year, "rows": built.summary.rows if rows is None else rows, "ledger": built.ledger}
    runs = []

    def run_job(run):
        runs.append(run)
        store.copy(done, run.staging_prefix + "part-00000-0.zstd.parquet")
        return report

    run_job.runs = runs
    return run_job


def test_a_published_year_is_current_until_its_bronze_or_its_object_changes(bronze_store, bronze_samples):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    job = glue_job_standing_in(bronze_store, 2022)
    assert glue_build.current(bronze_store, find_inputs(bronze_store, 2022)) is None  # nothing published yet
    published = glue_build.build(bronze_store, 2022, log, job, "run-1")
    assert published.changed and published.summary.rows == 100
    (run,) = job.runs
    assert not list(bronze_store.list(run.staging_prefix))

    again = glue_build.current(bronze_store, find_inputs(bronze_store, 2022))
    assert again is not None and not again.changed
    assert again.ledger == published.ledger and again.summary == published.summary
    assert not glue_build.build(bronze_store, 2022, log, job, "run-2").changed and len(job.runs) == 1

    # A bronze neighbour lands: the inputs' fingerprint changes.
    bronze_publish(bronze_store, bronze_samples.legacy_v2_2023)
    assert glue_build.current(bronze_store, find_inputs(bronze_store, 2022)) is None


def test_a_year_replaced_behind_the_record_or_without_one_is_built_again(bronze_store, bronze_samples):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    glue_build.build(bronze_store, 2022, log, glue_job_standing_in(bronze_store, 2022), "run-1")
    key = layout.data_key(SILVER_ZONE, SILVER_TABLE, 2022)
    inputs = find_inputs(bronze_store, 2022)

    bronze_store.put_bytes(key, bronze_store.get_bytes(key) + b"\0")  # another writer's object at the key
    assert glue_build.current(bronze_store, inputs) is None
    bronze_store.delete(glue_build.build_record_key(2022))
    assert glue_build.current(bronze_store, inputs) is None


def test_a_publish_that_finds_fewer_rows_than_reported_fails_and_leaves_no_record(bronze_store, bronze_samples):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    job = glue_job_standing_in(bronze_store, 2022, rows=101)
    with pytest.raises(SilverError, match=r"silver 2022: the Glue job reported 101 rows, .* holds 100"):
        glue_build.build(bronze_store, 2022, log, job, "run-1")
    assert not bronze_store.exists(glue_build.build_record_key(2022))
    assert glue_build.current(bronze_store, find_inputs(bronze_store, 2022)) is None
    assert not list(bronze_store.list(job.runs[0].staging_prefix))  # what the job staged is removed


def test_a_staged_year_that_shrinks_is_audited_before_it_is_published_and_refused(
    bronze_store, bronze_samples, tmp_path
):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    glue_build.build(bronze_store, 2022, log, glue_job_standing_in(bronze_store, 2022), "run-1")
    key = layout.data_key(SILVER_ZONE, SILVER_TABLE, 2022)
    published, record = bronze_store.get_bytes(key), bronze_store.get_bytes(glue_build.build_record_key(2022))
    # The job stages a year of 10 of the 100 cases.
    fewer = tmp_path / "fewer.parquet"
    pq.write_table(pq.read_table(pa.BufferReader(published)).slice(0, 10), fewer)
    bronze_store.publish(fewer, "elsewhere/fewer.parquet")
    staged = []

    def shrinking_job(run):
        staged.append(run.staging_prefix)
        bronze_store.copy("elsewhere/fewer.parquet", run.staging_prefix + "part-00000-0.zstd.parquet")
        return {"year": 2022, "rows": 10, "ledger": {name: 0 for name in LEDGER_FIELDS}}

    with pytest.raises(PublishRefused) as refused:
        glue_build.build(bronze_store, 2022, log, shrinking_job, "run-2", force=True)
    assert refused.value.check == "shrink_within_limit"
    assert refused.value.failures[0].published == {"rows": 100, "case ids": 100}
    assert refused.value.failures[0].staged == {"rows": 10, "case ids": 10}
    kept = layout.refused_prefix(SILVER_ZONE, SILVER_TABLE, 2022) + layout.BRONZE_FILE
    assert refused.value.refused_uri == bronze_store.uri(kept)
    assert pq.ParquetFile(bronze_store.path(kept)).metadata.num_rows == 10
    # Readers keep the year, its build record still vouches for it, and what the job staged is gone.
    assert bronze_store.get_bytes(key) == published
    assert bronze_store.get_bytes(glue_build.build_record_key(2022)) == record
    assert glue_build.current(bronze_store, find_inputs(bronze_store, 2022)) is not None
    assert not list(bronze_store.list(staged[0]))


def test_a_published_year_with_a_new_time_and_the_same_content_is_still_current(bronze_store, bronze_samples):
    import os

    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    glue_build.build(bronze_store, 2022, log, glue_job_standing_in(bronze_store, 2022), "run-1")
    key = bronze_store.path(layout.data_key(SILVER_ZONE, SILVER_TABLE, 2022))
    os.utime(key, ns=(0, 0))  # as a copy or a restore leaves it
    assert glue_build.current(bronze_store, find_inputs(bronze_store, 2022)) is not None
    broken = bytearray(key.read_bytes())
    broken[4:8] = b"\xff\xff\xff\xff"  # same size, another content
    key.write_bytes(bytes(broken))
    assert glue_build.current(bronze_store, find_inputs(bronze_store, 2022)) is None
