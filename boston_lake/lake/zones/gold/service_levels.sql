-- gold/service_levels: how fast the city closes what it is asked, for one year of silver (the view `silver`).
-- Cases are counted in the month they were opened (Boston local time), whatever happened to them later.
-- One query, three grains (column `grain`), because medians do not add up across rows:
--   'month'            month x source_system x neighborhood x case_type x department (the detail)
--   'year_neighborhood' the whole year per neighborhood (other dimensions NULL)
--   'year_department'   the whole year per department (other dimensions NULL)
-- Sum counts within one grain only. A NULL dimension at the 'month' grain means the source left it blank.
-- The local month of a case is looked up by its UTC hour: a time zone conversion per case would cost more than the
-- rest of the query, and Boston's offset from UTC is whole hours, changing on a UTC hour.
WITH utc_hours AS (
    SELECT DISTINCT epoch_us(opened_at) // 3600000000 AS utc_hour FROM silver
), local_months AS (
    SELECT
        utc_hour,
        CAST(date_trunc('month', to_timestamp(utc_hour * 3600) AT TIME ZONE 'America/New_York') AS DATE) AS month
    FROM utc_hours
), cases AS (
    SELECT
        local_months.month,
        source_system,
        neighborhood,
        case_type,
        department,
        closed_at IS NOT NULL AS is_closed,
        -- A close before the open is a source error: counted apart, kept out of the durations.
        closed_at < opened_at AS closed_before_opened,
        CASE WHEN closed_at >= opened_at THEN (epoch(closed_at) - epoch(opened_at)) / 3600.0 END AS hours_to_close,
        on_time
    FROM silver LEFT JOIN local_months ON epoch_us(silver.opened_at) // 3600000000 = local_months.utc_hour
)
SELECT
    CASE
        WHEN grouping(month) = 0 THEN 'month'
        WHEN grouping(neighborhood) = 0 THEN 'year_neighborhood'
        ELSE 'year_department'
    END AS grain,
    month,
    source_system,
    neighborhood,
    case_type,
    department,
    count(*) AS opened,
    count(*) FILTER (WHERE is_closed) AS closed,
    count(*) FILTER (WHERE NOT is_closed) AS still_open,
    -- Both percentiles from one sort of each group's durations (DuckDB computes the aggregate once).
    quantile_cont(hours_to_close, [0.5, 0.9])[1] AS median_hours_to_close,
    quantile_cont(hours_to_close, [0.5, 0.9])[2] AS p90_hours_to_close,
    count(on_time) AS with_on_time,
    count(*) FILTER (WHERE on_time) AS on_time,
    CAST(count(*) FILTER (WHERE on_time) AS DOUBLE) / nullif(count(on_time), 0) AS on_time_share,
    count(*) FILTER (WHERE closed_before_opened) AS closed_before_opened
FROM cases
GROUP BY GROUPING SETS (
    (month, source_system, neighborhood, case_type, department),
    (neighborhood),
    (department)
)
ORDER BY grain, month, source_system, neighborhood, case_type, department
