-- gold/intake: the shape of demand, for one year of silver (the view `silver`): cases opened per local day and
-- hour of day (America/New_York) and channel. weekday is ISO (1 = Monday ... 7 = Sunday).
WITH opened AS (
    SELECT opened_at AT TIME ZONE 'America/New_York' AS opened_local, channel
    FROM silver
)
SELECT
    CAST(opened_local AS DATE) AS opened_date,
    CAST(isodow(opened_local) AS INTEGER) AS weekday,
    CAST(hour(opened_local) AS INTEGER) AS hour,
    channel,
    count(*) AS cases_opened
FROM opened
GROUP BY CAST(opened_local AS DATE), isodow(opened_local), hour(opened_local), channel
ORDER BY opened_date, hour, channel
