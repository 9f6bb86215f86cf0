-- Spark SQL functions that DuckDB lacks, so that service_requests.sql runs unchanged on both engines.
-- The connection runs with TimeZone = 'UTC', as the Spark session does: a TIMESTAMP WITH TIME ZONE cast to
-- TIMESTAMP is then its UTC wall clock, which is what Spark's to_utc_timestamp reads from its argument.

-- to_utc_timestamp_icu(ts, tz): read ts's wall clock as local time in tz; the instant, as TIMESTAMP WITH TIME ZONE.
-- In the autumn's repeated hour Spark (java.time) takes the earlier offset (daylight time) and DuckDB's
-- timezone() the later one; the wall clock one hour earlier, plus an hour, is the daylight reading, and it is
-- taken whenever it shows the same wall clock. In the spring gap both engines move forward by the gap.
CREATE OR REPLACE MACRO to_utc_timestamp_icu(ts, tz) AS (
    CASE
        WHEN timezone(tz, timezone(tz, CAST(ts AS TIMESTAMP) - INTERVAL 1 HOUR) + INTERVAL 1 HOUR) = CAST(ts AS TIMESTAMP)
        THEN timezone(tz, CAST(ts AS TIMESTAMP) - INTERVAL 1 HOUR) + INTERVAL 1 HOUR
        ELSE timezone(tz, CAST(ts AS TIMESTAMP))
    END
);

-- New York's daylight time since 2007 (US Energy Policy Act of 2005): from the second Sunday of March, 02:00
-- standard time (the wall clock jumps to 03:00), to the first Sunday of November, 02:00 daylight time (the wall
-- clock falls back to 01:00). Wall clocks, as TIMESTAMP.
CREATE OR REPLACE MACRO ny_daylight_starts(y) AS (
    CAST(make_date(y, 3, 8) + CAST((7 - dayofweek(make_date(y, 3, 8))) % 7 AS INTEGER) AS TIMESTAMP) + INTERVAL 3 HOUR
);
CREATE OR REPLACE MACRO ny_daylight_ends(y) AS (
    CAST(make_date(y, 11, 1) + CAST((7 - dayofweek(make_date(y, 11, 1))) % 7 AS INTEGER) AS TIMESTAMP) + INTERVAL 2 HOUR
);

-- wall_micros(ts): the wall clock of a TIMESTAMP, or the UTC wall clock of a TIMESTAMP WITH TIME ZONE, in
-- microseconds since 1970 (what CAST(ts AS TIMESTAMP) shows in a UTC session, without a trip through ICU).
CREATE OR REPLACE MACRO wall_micros(ts) AS (epoch_us(ts));

-- ny_daylight_micros(): New York's [start, end) of daylight time as wall clocks in microseconds, one pair per
-- year of 2007-2040: a constant, which DuckDB computes once per statement.
CREATE OR REPLACE MACRO ny_daylight_micros() AS (
    list_transform(range(2007, 2041), lambda y: [epoch_us(ny_daylight_starts(y)), epoch_us(ny_daylight_ends(y))])
);

-- ny_daylight_of(us): the pair of the year of wall clock `us`. The year is `us` over the mean Gregorian year,
-- which is off by at most a day or two around New Year, months away from the changes.
CREATE OR REPLACE MACRO ny_daylight_of(us) AS (
    ny_daylight_micros()[CAST(floor(us / 31556952000000) AS BIGINT) - 36]
);

-- to_utc_timestamp(ts, tz): Spark's function. ICU's timezone() costs about a microsecond a value and the macro
-- above calls it up to four times, so for New York wall clocks of 2007-2040 the offset is computed from the rule
-- instead, in microseconds: 4 hours from the end of the spring gap to the end of the repeated autumn hour (Spark
-- takes daylight time there), 5 hours otherwise (the gap moves forward by an hour, as in both engines). Every
-- hour of 2006-2041 and every minute of the days the clocks change is checked against to_utc_timestamp_icu in
-- the tests. A null stays null without reaching ICU.
CREATE OR REPLACE MACRO to_utc_timestamp(ts, tz) AS (
    CASE
        WHEN ts IS NULL THEN NULL
        WHEN tz = 'America/New_York'
            AND wall_micros(ts) BETWEEN epoch_us(TIMESTAMP '2007-01-03') AND epoch_us(TIMESTAMP '2040-12-29')
        THEN make_timestamptz(
            wall_micros(ts) + CASE
                WHEN wall_micros(ts) >= ny_daylight_of(wall_micros(ts))[1]
                    AND wall_micros(ts) < ny_daylight_of(wall_micros(ts))[2]
                THEN 4
                ELSE 5
            END * CAST(3600000000 AS BIGINT)
        )
        ELSE to_utc_timestamp_icu(ts, tz)
    END
);
