"""The evidence behind silver's time rules (docs/silver.md), checked on the real sample rows as published."""

import duckdb
import pytest

from boston_lake.lake.zones.silver.quality import NIGHT_HOURS, trough_hour
from boston_lake.sample_portal.server import DATA_DIR

V1 = DATA_DIR / "legacy_v1_2022-01_qsv_boston311-100.csv"
V2_2013 = DATA_DIR / "legacy_v2_2013_bu-spark_filtered_every4th.csv"
V2_2023 = DATA_DIR / "legacy_v2_2023_bu-spark_animal_reports_every5th.csv"
NEW_SYSTEM = DATA_DIR / "new_system_2025-08_to_2026-02_soham-bhagwat_api_extract.csv"


@pytest.fixture(scope="module")
def db():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def one(db, sql):
    return db.execute(sql).fetchone()


def test_v1_closed_dt_is_the_local_time_the_crm_wrote_in_the_closure_text(db):
    # "Closed date : Wed Jan 19 11:42:16 EST 2022": the CRM's own wall clock, with its zone.
    # Two spellings: "Wed Jan 19 11:42:16 EST 2022" and "2022-01-04 14:19:18.623".
    written = (
        "coalesce(try_strptime(regexp_replace(regexp_extract(closure_reason, "
        "'Closed date : [A-Za-z]{3} ([A-Za-z]{3} [0-9]{2} [0-9:]{8} E[SD]T [0-9]{4})', 1), ' E[SD]T', ''), "
        "'%b %d %H:%M:%S %Y'), date_trunc('second', TRY_CAST(regexp_extract(closure_reason, "
        "'Closed date : ([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+)', 1) AS TIMESTAMP)))"
    )
    texts, equal = one(
        db,
        f"""SELECT count({written}), count(*) FILTER (WHERE {written} = CAST(closed_dt AS TIMESTAMP))
            FROM read_csv('{V1}', all_varchar = true)""",
    )
    assert texts == 83 and equal == texts


def test_v2_times_are_local_wall_times_shifted_as_if_they_were_utc(db):
    rows = f"""SELECT CAST(closed_dt AS TIMESTAMP) AS closed, CAST(open_dt AS TIMESTAMP) AS opened,
                date_trunc('second', TRY_CAST(regexp_extract(closure_reason,
                    'Closed date : ([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}} [0-9:.]+)', 1) AS TIMESTAMP)) AS text
            FROM read_csv('{V2_2023}', all_varchar = true) WHERE closure_reason LIKE '%Closed date : 2%'"""
    texts, back_to_wall, four, five, least_after_open = one(
        db,
        f"""SELECT count(*),
                count(*) FILTER (WHERE CAST(timezone('America/New_York', closed) AS TIMESTAMP) = text),
                count(*) FILTER (WHERE text - closed = INTERVAL 4 HOUR),
                count(*) FILTER (WHERE text - closed = INTERVAL 5 HOUR),
                min(text - opened)
            FROM ({rows})""",
    )
    # Reading closed_dt as New York time and converting it to UTC gives back the wall clock of the text, for
    # every row: 4 hours in summer, 5 in winter.
    assert texts == 621 and back_to_wall == texts and four + five == texts and four and five
    # open_dt carries the same shift: no case closes less than 4 hours after its open_dt in local time.
    assert least_after_open.total_seconds() >= 4 * 3600
    # Uncorrected, 2013's open hours would put the quietest time of day in the evening.
    hours = dict(
        db.execute(
            f"SELECT hour(CAST(open_dt AS TIMESTAMP)), count(*) FROM read_csv('{V2_2013}') GROUP BY 1"
        ).fetchall()
    )
    assert trough_hour([hours.get(hour, 0) for hour in range(24)]) not in NIGHT_HOURS


def test_new_system_plus_00_values_have_their_night_trough_where_local_time_has_it(db):
    hours = dict(
        db.execute(
            f"SELECT CAST(substr(open_date, 12, 2) AS INTEGER), count(*) FROM read_csv('{NEW_SYSTEM}', "
            "all_varchar = true) GROUP BY 1"
        ).fetchall()
    )
    as_written = [hours.get(hour, 0) for hour in range(24)]
    assert trough_hour(as_written) in NIGHT_HOURS  # read as local time: quiet at 3-4 AM
    as_if_utc = as_written[-4:] + as_written[:-4]  # read as UTC, Boston local hours are 4 earlier (EDT)
    assert trough_hour(as_if_utc) not in NIGHT_HOURS
