-- Spark SQL functions that DuckDB lacks, so that service_requests.sql runs unchanged on both engines.
-- The connection runs with TimeZone = 'UTC', as the Spark session does: a TIMESTAMP WITH TIME ZONE cast to
-- TIMESTAMP is then its UTC wall clock, which is what Spark's to_utc_timestamp reads from its argument.

-- to_utc_timestamp(ts, tz): read ts's wall clock as local time in tz; the instant, as TIMESTAMP WITH TIME ZONE.
-- In the autumn's repeated hour Spark (java.time) takes the earlier offset (daylight time) and DuckDB's
-- timezone() the later one; the wall clock one hour earlier, plus an hour, is the daylight reading, and it is
-- taken whenever it shows the same wall clock. In the spring gap both engines move forward by the gap.
CREATE OR REPLACE MACRO to_utc_timestamp(ts, tz) AS (
    CASE
        WHEN timezone(tz, timezone(tz, CAST(ts AS TIMESTAMP) - INTERVAL 1 HOUR) + INTERVAL 1 HOUR) = CAST(ts AS TIMESTAMP)
        THEN timezone(tz, CAST(ts AS TIMESTAMP) - INTERVAL 1 HOUR) + INTERVAL 1 HOUR
        ELSE timezone(tz, CAST(ts AS TIMESTAMP))
    END
);
