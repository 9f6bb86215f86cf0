-- gold/intake: the shape of demand, for one year of silver (the view `silver`): cases opened per local day and
-- hour of day (America/New_York) and channel. weekday is ISO (1 = Monday ... 7 = Sunday).
-- Cases are counted per UTC hour first and only those hours are turned into local time: a time zone conversion
-- costs more than the rest of the query per row, and Boston's offset from UTC is whole hours, changing on a UTC
-- hour, so every case of one UTC hour has the same local day and hour.
WITH per_utc_hour AS (
    SELECT epoch_us(opened_at) // 3600000000 AS utc_hour, channel, count(*) AS cases
    FROM silver
    GROUP BY ALL
), opened AS (
    SELECT to_timestamp(utc_hour * 3600) AT TIME ZONE 'America/New_York' AS opened_local, channel, cases
    FROM per_utc_hour
)
SELECT
    CAST(opened_local AS DATE) AS opened_date,
    CAST(isodow(opened_local) AS INTEGER) AS weekday,
    CAST(hour(opened_local) AS INTEGER) AS hour,
    channel,
    CAST(sum(cases) AS BIGINT) AS cases_opened
FROM opened
GROUP BY CAST(opened_local AS DATE), isodow(opened_local), hour(opened_local), channel
ORDER BY opened_date, hour, channel
