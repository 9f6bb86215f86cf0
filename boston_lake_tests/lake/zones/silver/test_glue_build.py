"""Committing what the Glue job staged, and knowing when a year need not run again: on a local store, with a
year DuckDB built standing in for the job's output (the Spark path itself is tested in defs/test_silver_glue)."""

import logging
import shutil

import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.catalog.iceberg import IcebergTables
from boston_lake.lake.targets import LocalTarget
from boston_lake.lake.zones.publish import PublishRefused
from boston_lake.lake.zones.silver import glue_build
from boston_lake.lake.zones.silver.duckdb_build import LEDGER_FIELDS, SilverError, SilverZone
from boston_lake.lake.zones.silver.model import SILVER_TABLE, SILVER_ZONE
from boston_lake_tests.support.bronze_samples import bronze_publish

log = logging.getLogger("test_glue_build")


def glue_job_standing_in(store, year, rows=None):
    """What the Glue job does to a prepared run, stood in for by DuckDB (in a copy of the lake): the year built, as
    one Parquet object under the run's staging prefix, and the report the job sends (`rows` overrides its count)."""
    elsewhere = store.root.parent / f"stand_in_{year}"
    shutil.copytree(store.root, elsewhere)
    built = SilverZone(LocalTarget(elsewhere).iceberg(), log).build(year)
    done = f"elsewhere/{year}.parquet"
    store.publish(elsewhere / built.key, done)
    report = {"year": year, "rows": built.summary.rows if rows is None else rows, "ledger": built.ledger}
    runs = []

    def run_job(run):
        runs.append(run)
        store.copy(done, run.staging_prefix + "part-00000-0.zstd.parquet")
        return report

    run_job.runs = runs
    return run_job


def tables_of(store) -> IcebergTables:
    return LocalTarget(store.root).iceberg()


def test_a_committed_year_is_current_until_its_bronze_changes(bronze_store, bronze_samples):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    job = glue_job_standing_in(bronze_store, 2022)
    tables = tables_of(bronze_store)
    published = glue_build.build(tables, 2022, log, job, "run-1")
    assert published.changed and published.summary.rows == 100
    (run,) = job.runs
    assert not list(bronze_store.list(run.staging_prefix))
    [entry] = tables.history(tables.table(SILVER_TABLE))
    assert (entry.snapshot_id, entry.year, entry.rows, entry.run_id) == (published.snapshot_id, "2022", "100", "run-1")

    again = glue_build.build(tables_of(bronze_store), 2022, log, job, "run-2")
    assert not again.changed and len(job.runs) == 1
    assert again.ledger == published.ledger and again.summary == published.summary
    assert again.snapshot_id == published.snapshot_id

    # A bronze neighbour lands: the inputs' fingerprint changes, and the job runs again.
    bronze_publish(bronze_store, bronze_samples.legacy_v2_2023)
    assert glue_build.build(tables_of(bronze_store), 2022, log, job, "run-3").changed and len(job.runs) == 2


def test_a_commit_that_finds_fewer_rows_than_reported_fails_and_commits_nothing(bronze_store, bronze_samples):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    job = glue_job_standing_in(bronze_store, 2022, rows=101)
    tables = tables_of(bronze_store)
    with pytest.raises(SilverError, match=r"silver 2022: the Glue job reported 101 rows, .* holds 100"):
        glue_build.build(tables, 2022, log, job, "run-1")
    assert tables.load(SILVER_TABLE) is None
    assert not list(bronze_store.list(job.runs[0].staging_prefix))  # what the job staged is removed


def test_a_staged_year_that_shrinks_is_audited_before_it_is_committed_and_refused(
    bronze_store, bronze_samples, tmp_path
):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    tables = tables_of(bronze_store)
    first = glue_build.build(tables, 2022, log, glue_job_standing_in(bronze_store, 2022), "run-1")
    # The job stages a year of 10 of the 100 cases.
    fewer = tmp_path / "fewer.parquet"
    pq.write_table(pq.read_table(bronze_store.path(first.key)).slice(0, 10), fewer)
    bronze_store.publish(fewer, "elsewhere/fewer.parquet")
    staged = []

    def shrinking_job(run):
        staged.append(run.staging_prefix)
        bronze_store.copy("elsewhere/fewer.parquet", run.staging_prefix + "part-00000-0.zstd.parquet")
        return {"year": 2022, "rows": 10, "ledger": {name: 0 for name in LEDGER_FIELDS}}

    with pytest.raises(PublishRefused) as refused:
        glue_build.build(tables_of(bronze_store), 2022, log, shrinking_job, "run-2", force=True)
    assert refused.value.check == "shrink_within_limit"
    assert refused.value.failures[0].published == {"rows": 100, "case ids": 100}
    assert refused.value.failures[0].staged == {"rows": 10, "case ids": 10}
    kept = layout.refused_prefix(SILVER_ZONE, SILVER_TABLE, 2022) + layout.BRONZE_FILE
    assert refused.value.refused_uri == bronze_store.uri(kept)
    assert pq.ParquetFile(bronze_store.path(kept)).metadata.num_rows == 10  # bronze still lists the other 90
    # Nothing was committed: readers keep the year, and what the job staged is gone.
    table = tables_of(bronze_store).table(SILVER_TABLE)
    assert table.current_snapshot().snapshot_id == first.snapshot_id
    assert not list(bronze_store.list(staged[0]))
