"""Silver years built by DuckDB from real bronze of all three schema generations."""

import dataclasses
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from boston_lake.lake import layout
from boston_lake.lake.targets import LocalTarget
from boston_lake.lake.zones.gold import INTAKE, build_gold_partition
from boston_lake.lake.zones.publish import PublishRefused, ShrinkGuard
from boston_lake.lake.zones.silver.duckdb_build import SilverError, SilverZone
from boston_lake.lake.zones.silver.model import (
    DUCKDB_MACROS_SQL,
    SCHEMA,
    SILVER_TABLE,
    SILVER_ZONE,
    TRANSFORM_SQL,
    statements,
)
from boston_lake.lake.zones.silver.quality import silver_facts
from boston_lake_tests.support.bronze_samples import BronzeSample, bronze_publish, listed_twice


class ListLog:
    def __init__(self):
        self.warnings: list[str] = []

    def info(self, msg, *args):
        pass

    def warning(self, msg, *args):
        self.warnings.append(msg)


def zone_of(store) -> SilverZone:
    return SilverZone(LocalTarget(store.root).iceberg(), ListLog())


def published_path(store, year) -> str:
    """The data file of `year` in the current snapshot of the Iceberg table."""
    tables = LocalTarget(store.root).iceberg()
    [data_file] = tables.files(tables.table(SILVER_TABLE), year=year)
    return data_file.file_path


def silver(store, year) -> pa.Table:
    return pq.read_table(published_path(store, year))


def row(table: pa.Table, case_id: str) -> dict:
    (found,) = table.filter(pc.equal(table["case_id"], case_id)).to_pylist()
    return found


def types(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    return [(field.name, field.type) for field in schema]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.slow
def test_every_generation_lands_once_with_true_utc_instants(bronze_lake):
    zone = zone_of(bronze_lake)
    built = {year: zone.build(year) for year in (2013, 2022, 2023, 2025, 2026)}
    assert {year: p.summary.rows for year, p in built.items()} == {
        2013: 700,
        2022: 100,
        2023: 700,
        2025: 4134,
        2026: 1339,
    }
    assert built[2022].summary.rows_by_generation == {"v1": 100}
    assert built[2025].summary.rows_by_generation == {"new_system": 4134}
    for year in built:
        assert types(silver(bronze_lake, year).schema) == types(SCHEMA), year

    # v1: local wall time. Its closure text says "Wed Jan 19 11:42:16 EST 2022".
    v1 = row(silver(bronze_lake, 2022), "101004130437")
    assert v1["closed_at"] == utc("2022-01-19 16:42:16") and v1["source_generation"] == "v1"
    # v2: closed_dt 2023-12-04 04:13:13 was local 09:13:13 (the closure text) shifted as if it were UTC.
    v2 = row(silver(bronze_lake, 2023), "101005187223")
    assert v2["closed_at"] == utc("2023-12-04 14:13:13")
    assert v2["opened_at"] == utc("2023-12-02 17:57:00")  # open_dt 07:57 -> local 12:57 EST
    # v2 in summer: closed_dt 11:27:56 -> local 15:27:56 EDT (the closure text) -> 19:27:56 UTC.
    assert row(silver(bronze_lake, 2023), "101004972880")["closed_at"] == utc("2023-08-07 19:27:56")
    # NEW SYSTEM: "+00" values are local wall times.
    ns = row(silver(bronze_lake, 2025), "BCS-00065327")
    assert ns["opened_at"] == utc("2025-08-01 10:35:06.539") and ns["source_system"] == "new_system"


def test_columns_are_conformed(bronze_lake):
    zone = zone_of(bronze_lake)
    for year in (2013, 2022, 2025):
        zone.build(year)
    v1, v2, ns = silver(bronze_lake, 2022), silver(bronze_lake, 2013), silver(bronze_lake, 2025)
    # Ward 3, 3 and 03 are ward 3; pandas' 2121.0 is ZIP 02121.
    assert set(pc.unique(v1["ward"]).to_pylist()) <= set(range(1, 23)) | {None}
    assert row(v1, "101004130437")["ward"] == 3 and row(v1, "101004130437")["zipcode"] == "02113"
    first_v2 = row(v2, "101000729509")
    assert first_v2["zipcode"] == "02121" and first_v2["ward"] == 14 and first_v2["precinct"] == "1406"
    assert row(ns, "BCS-00065327")["precinct"] == "1401" and row(ns, "BCS-00065327")["ward"] == 14
    for table in (v1, v2, ns):
        assert {len(zipcode) for zipcode in pc.drop_null(table["zipcode"]).to_pylist()} == {5}
    # The legacy CRM's default location (19 of the 100 v1 rows, none of them blank) is no location.
    assert v1["latitude"].null_count == 19 and v1["longitude"].null_count == 19
    assert row(v1, "101004143000")["latitude"] is None
    # Blanks are null, on_time is a boolean.
    assert row(v1, "101004143000")["closure_reason"] is None and row(v1, "101004143000")["on_time"] is False
    assert set(ns["on_time"].to_pylist()) == {True, False}


def _republished(sample: BronzeSample, tmp_path, year: int) -> BronzeSample:
    """The sample's first ten cases in a later year's file, closed there: the same cases, a newer state."""
    table = pq.read_table(sample.path).slice(0, 10)
    closed = pa.array([datetime(2022, 2, 1, 9, 0)] * 10, pa.timestamp("us"))
    table = table.set_column(table.schema.get_field_index("closed_dt"), "closed_dt", closed)
    table = table.set_column(table.schema.get_field_index("case_status"), "case_status", pa.array(["Closed"] * 10))
    path = tmp_path / f"republished_{year}.parquet"
    pq.write_table(table, path)
    return BronzeSample(sample.table, year, path, 10, sample.generation)


def test_a_case_in_two_files_lands_once_in_its_open_year_with_its_latest_state(bronze_store, bronze_samples, tmp_path):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    bronze_publish(bronze_store, _republished(bronze_samples.legacy_v1_2022, tmp_path, 2023))
    zone = zone_of(bronze_store)
    year_2022, year_2023 = zone.build(2022), zone.build(2023)
    assert year_2022.summary.rows == 100 and year_2023.summary.rows == 0
    assert year_2022.ledger["candidate_rows"] == 110 and year_2022.ledger["duplicates_merged"] == 10
    assert year_2023.ledger["moved_to_neighbour_year"] == 0 and year_2023.ledger["candidate_rows"] == 0
    first_id = str(pq.read_table(bronze_samples.legacy_v1_2022.path)["case_enquiry_id"][0])
    latest = row(silver(bronze_store, 2022), first_id)
    assert latest["case_status"] == "Closed" and latest["source_year"] == 2023
    assert latest["closed_at"] == utc("2022-02-01 14:00:00")
    (facts,) = silver_facts(LocalTarget(bronze_store.root).iceberg(), [2023])
    assert facts.bronze_ids == 10 and facts.bronze_ids_unplaced == 0 and facts.bronze_ids_placed_twice == 0


def test_of_copies_in_one_file_that_tie_the_later_row_wins(bronze_store, bronze_samples, tmp_path):
    bronze_publish(bronze_store, listed_twice(bronze_samples.legacy_v1_2022, tmp_path))
    built = zone_of(bronze_store).build(2022)
    assert built.summary.rows == 100 and built.ledger["duplicates_merged"] == 5
    built_rows = silver(bronze_store, 2022)
    titles = dict(zip(built_rows["case_id"].to_pylist(), built_rows["case_title"].to_pylist(), strict=True))
    first_ids = [str(i) for i in pq.read_table(bronze_samples.legacy_v1_2022.path)["case_enquiry_id"][:5].to_pylist()]
    assert [titles[case_id] for case_id in first_ids] == [f"listed again {n}" for n in range(5)]


def test_neighbouring_years_whose_statistics_miss_the_year_are_not_read_wide(bronze_store, bronze_samples):
    """The window is pushed into the Parquet reader: the wide columns of Y-1 and Y+1 are read only from row groups
    whose open times reach within a day of the year (silver's speed rests on it). Building 2024 from the 2022
    sample listed as 2024, and the 2013 sample listed as 2023 and 2025: the neighbours reach nowhere near 2024."""
    bronze_publish(bronze_store, dataclasses.replace(bronze_samples.legacy_v1_2022, year=2024))
    for year in (2023, 2025):
        bronze_publish(bronze_store, dataclasses.replace(bronze_samples.legacy_v2_2013, year=year))
    plans = []
    zone = zone_of(bronze_store)
    transform = zone._transform

    def transform_then_explain(connection, *args):
        ledger = transform(connection, *args)
        plans.append(connection.execute("EXPLAIN SELECT * FROM silver_service_requests").fetchall()[0][1])
        return ledger

    zone._transform = transform_then_explain
    assert zone.build(2024).summary.rows == 100
    (plan,) = plans
    assert plan.count("READ_PARQUET") == 1  # 2024's file; DuckDB's statistics leave the neighbours out


def test_missing_neighbours_are_read_as_empty_and_named(bronze_store, bronze_samples):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    partition = zone_of(bronze_store).build(2022)
    assert partition.inputs.missing == (
        "legacy_requests 2021: bronze not built",
        "legacy_requests 2023: bronze not built",
        "new_system_requests 2021: the source has no such year",
        "new_system_requests 2022: the source has no such year",
        "new_system_requests 2023: the source has no such year",
    )
    assert partition.metadata()["read_as_empty"] == list(partition.inputs.missing)


def test_unchanged_bronze_rebuilds_nothing_and_changed_bronze_rebuilds(bronze_store, bronze_samples, tmp_path):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    zone = zone_of(bronze_store)
    first = zone.build(2022)
    again = zone.build(2022)
    assert not again.changed and "already built" in again.reason
    assert (again.key, again.snapshot_id) == (first.key, first.snapshot_id)
    assert again.ledger == first.ledger and again.summary == first.summary
    assert zone.build(2022, force=True).changed
    bronze_publish(bronze_store, _republished(bronze_samples.legacy_v1_2022, tmp_path, 2023))
    assert zone.build(2022).changed


def test_a_broken_bronze_file_fails_naming_it_and_keeps_the_published_year(bronze_store, bronze_samples):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    zone = zone_of(bronze_store)
    zone.build(2022)
    published = published_path(bronze_store, 2022)
    # A file with the v2 columns but text where the transform needs timestamps.
    broken = pq.read_table(bronze_samples.legacy_v2_2013.path)
    broken = broken.set_column(broken.schema.get_field_index("open_dt"), "open_dt", pa.array(["soon"] * len(broken)))
    path = bronze_store.root / "broken.parquet"
    pq.write_table(broken, path)
    bronze_store.publish(path, layout.bronze_data_key("legacy_requests", 2023))
    with pytest.raises(SilverError, match=r"silver 2022: the transform failed on .*legacy_requests/year=2023"):
        zone.build(2022)
    assert published_path(bronze_store, 2022) == published


def test_the_sql_text_keeps_to_what_both_engines_run():
    sql = "\n".join(statements(TRANSFORM_SQL))
    assert "QUALIFY" not in sql.upper()
    assert "\\" not in sql  # Spark unescapes backslashes in literals, DuckDB does not


def test_the_fast_to_utc_timestamp_equals_the_icu_one_at_every_hour_and_every_minute_of_the_changes():
    """The rule-based New York offset (2007-2040) against ICU's timezone() with Spark's autumn choice, for every
    hour of 2006-2041 (beyond the rule's years both sides are ICU) and every minute of every Sunday of March,
    April, October and November, whole and with seconds and microseconds, from naive and UTC-aware values."""
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        for statement in statements(DUCKDB_MACROS_SQL):
            connection.execute(statement)
        connection.execute(
            """CREATE TABLE walls AS
            SELECT ts FROM range(TIMESTAMP '2006-01-01', TIMESTAMP '2042-01-01', INTERVAL 1 HOUR) hours(ts)
            UNION ALL
            SELECT ts + INTERVAL 59 MINUTE + INTERVAL 59 SECOND + INTERVAL 999999 MICROSECOND
            FROM range(TIMESTAMP '2006-01-01', TIMESTAMP '2042-01-01', INTERVAL 1 HOUR) hours(ts)
            UNION ALL
            SELECT day + minute * INTERVAL 1 MINUTE
            FROM range(TIMESTAMP '2006-01-01', TIMESTAMP '2042-01-01', INTERVAL 1 DAY) days(day),
                range(0, 1440) minutes(minute)
            WHERE month(day) IN (3, 4, 10, 11) AND dayofweek(day) = 0"""
        )
        (compared, differing) = connection.execute(
            """SELECT count(*), count(*) FILTER (
                WHERE to_utc_timestamp(ts, 'America/New_York')
                        IS DISTINCT FROM to_utc_timestamp_icu(ts, 'America/New_York')
                    OR to_utc_timestamp(CAST(ts AS TIMESTAMP WITH TIME ZONE), 'America/New_York')
                        IS DISTINCT FROM to_utc_timestamp_icu(ts, 'America/New_York'))
            FROM walls"""
        ).fetchone()
        assert compared > 1_000_000 and differing == 0
        # Other zones and NULL take ICU's path.
        (paris, missing) = connection.execute(
            "SELECT strftime(to_utc_timestamp(TIMESTAMP '2023-07-01 12:00:00', 'Europe/Paris'), '%H:%M'), "
            "to_utc_timestamp(CAST(NULL AS TIMESTAMP), 'America/New_York')"
        ).fetchone()
        assert (paris, missing) == ("10:00", None)


def _first_rows(sample: BronzeSample, tmp_path, rows: int) -> BronzeSample:
    path = tmp_path / f"first_{rows}_{sample.table}_{sample.year}.parquet"
    pq.write_table(pq.read_table(sample.path).slice(0, rows), path)
    return BronzeSample(sample.table, sample.year, path, rows, sample.generation)


def test_a_year_whose_bronze_shrank_is_refused_and_kept_aside_until_a_run_accepts_it(
    bronze_store, bronze_samples, tmp_path
):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    zone = zone_of(bronze_store)
    assert zone.build(2022).summary.rows == 100
    published = published_path(bronze_store, 2022)
    bronze_publish(bronze_store, _first_rows(bronze_samples.legacy_v1_2022, tmp_path, 50))

    with pytest.raises(PublishRefused) as refused:
        zone.build(2022)
    kept = bronze_store.root / layout.refused_prefix(SILVER_ZONE, SILVER_TABLE, 2022) / layout.BRONZE_FILE
    line = str(refused.value)
    assert line.startswith(
        "silver/service_requests 2022: not published, shrink_within_limit refused the staged version: "
        "published 100 rows, 100 case ids, staged 50 rows, 50 case ids; 50 rows lost (50%), 50 case ids vanished "
        "(50%; e.g. "
    )
    assert line.endswith(
        f"the refused one is kept at {kept} (to publish it anyway, run again with accept_shrink: <the reason>)"
    )
    assert published_path(bronze_store, 2022) == published
    refused_rows = pq.read_table(kept)
    assert refused_rows.num_rows == 100 and refused_rows["withdrawn_at"].null_count == 50  # 50 live, 50 withdrawn

    accepted = zone.build(2022, shrink=ShrinkGuard(accept="bronze 2022 was cut to 50 cases on purpose"))
    assert accepted.changed and accepted.summary.rows == 100 and accepted.withdrawn == 50  # kept, marked
    assert accepted.metadata()["shrink_accepted"] == {
        "reason": "bronze 2022 was cut to 50 cases on purpose",
        "published_rows": 100,
        "staged_rows": 50,
        "published_case_ids": 100,
        "staged_case_ids": 50,
        "vanished_case_ids": 50,
    }
    assert not kept.exists()


def test_a_shrink_within_the_limit_is_published(bronze_store, bronze_samples, tmp_path):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    zone = zone_of(bronze_store)
    zone.build(2022)
    bronze_publish(bronze_store, _first_rows(bronze_samples.legacy_v1_2022, tmp_path, 98))
    assert zone.build(2022, shrink=ShrinkGuard(max_share=0.02)).withdrawn == 2
    bronze_publish(bronze_store, _first_rows(bronze_samples.legacy_v1_2022, tmp_path, 96))
    with pytest.raises(PublishRefused, match="2 case ids vanished"):
        zone.build(2022, shrink=ShrinkGuard(max_share=0.01))


@pytest.mark.slow
def test_a_case_no_bronze_file_lists_any_more_stays_withdrawn_and_gold_leaves_it_out(
    bronze_store, bronze_samples, tmp_path
):
    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)
    zone = zone_of(bronze_store)
    assert zone.build(2022).withdrawn == 0
    bronze_publish(bronze_store, _first_rows(bronze_samples.legacy_v1_2022, tmp_path, 90))  # the city drops 10

    dropped = zone.build(2022, shrink=ShrinkGuard(accept="the city dropped 10 cases"))  # 10% > the 2% guard
    assert dropped.changed and dropped.summary.rows == 100 and dropped.withdrawn == 10
    assert dropped.metadata()["withdrawn_cases"] == 10
    rows = silver(bronze_store, 2022)
    withdrawn = rows.filter(pc.is_valid(rows["withdrawn_at"]))
    ids = pq.read_table(bronze_samples.legacy_v1_2022.path)["case_enquiry_id"].to_pylist()
    assert sorted(withdrawn["case_id"].to_pylist()) == sorted(str(case_id) for case_id in ids[90:])
    (first_seen,) = set(withdrawn["withdrawn_at"].to_pylist())

    (facts,) = silver_facts(LocalTarget(bronze_store.root).iceberg(), [2022])
    assert facts.withdrawn == 10 and len(facts.withdrawn_examples) == 5
    gold = build_gold_partition(LocalTarget(bronze_store.root).iceberg(), INTAKE, 2022)
    assert gold.silver_rows == 90  # the answers count the cases the source lists

    bronze_publish(bronze_store, _first_rows(bronze_samples.legacy_v1_2022, tmp_path, 89))  # one more goes
    again = zone.build(2022)
    assert again.withdrawn == 11
    rows = silver(bronze_store, 2022)
    times = dict(zip(rows["case_id"].to_pylist(), rows["withdrawn_at"].to_pylist(), strict=True))
    assert {times[str(case_id)] for case_id in ids[90:]} == {first_seen}  # kept from when it was first withdrawn

    bronze_publish(bronze_store, bronze_samples.legacy_v1_2022)  # the city restores them
    restored = zone.build(2022)
    assert restored.withdrawn == 0 and silver(bronze_store, 2022)["withdrawn_at"].null_count == 100
