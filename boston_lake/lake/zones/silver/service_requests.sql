-- silver.service_requests: every 311 case once, in one model, with true UTC instants.
--
-- One text for two engines: Spark SQL (the Glue job) and DuckDB (the embedded target). It keeps to what both
-- run: no QUALIFY, no backslashes in literals (Spark unescapes them, DuckDB does not), explicit casts on every
-- output column. DuckDB lacks Spark's to_utc_timestamp; boston_lake/lake/zones/silver/duckdb_macros.sql defines it.
--
-- Inputs, registered by the runner before this text runs:
--   legacy_v1, legacy_v2, new_system   the bronze files read (years Y-1..Y+1), each row with its file's
--                                      source_year and its source_row (its position in that file)
--   ${partition_year}                  the year being built, a literal put in by the runner (model.py), so that
--                                      both engines fold it and push the window below into the Parquet scan
-- Statements are separated by semicolons at the end of a line; the runner executes them in order.
--
-- The plan: choose each case's winning copy on thin columns (id, file, row, opening and closing times), then
-- read the wide columns once, for the rows written: those of the neighbouring files are only the few opened
-- within a day of the year, which both engines find from the Parquet statistics.

-- Time bases (README "Time rules", with the evidence). Each generation's value is first made the Boston wall
-- clock, and the wall clock then the UTC instant with to_utc_timestamp(wall, NY):
--   legacy v1   local wall time in America/New_York            -> the value is the wall clock
--   legacy v2   local wall time converted as if it were UTC    -> to_utc_timestamp(value, NY) gives the wall clock back
--   new system  local wall time labelled +00                   -> its UTC reading is the wall clock
-- Every copy read needs its opening wall clock (it decides the year); the other times are converted only for
-- the copies that are ranked or written.
-- in_window: the file is the partition's year, or the copy opened within a day of it as written (every time
-- base is less than a day from the wall clock). Only such a copy can be written into this partition.
CREATE OR REPLACE TEMPORARY VIEW silver_conformed AS
SELECT
    CAST(case_enquiry_id AS STRING) AS case_id,
    'legacy' AS source_system,
    'v1' AS source_generation,
    1 AS generation_rank,
    source_year,
    source_row,
    source_year = ${partition_year}
        OR (open_dt >= make_date(${partition_year} - 1, 12, 31) AND open_dt < make_date(${partition_year} + 1, 1, 2))
        AS in_window,
    open_dt AS opened_wall,
    closed_dt AS closed_as_written,
    target_dt AS sla_due_as_written,
    case_status,
    ontime AS on_time_text,
    case_title,
    subject,
    reason AS case_category,
    type AS case_type,
    department,
    queue,
    source AS channel,
    closure_reason,
    CAST(NULL AS STRING) AS closure_comments,
    location AS address,
    location_street_name AS street_name,
    neighborhood,
    location_zipcode AS zipcode_text,
    ward AS ward_text,
    precinct AS precinct_text,
    police_district,
    fire_district,
    pwd_district AS public_works_district,
    city_council_district,
    latitude,
    longitude
FROM legacy_v1
UNION ALL
SELECT
    CAST(case_enquiry_id AS STRING),
    'legacy',
    'v2',
    2,
    source_year,
    source_row,
    source_year = ${partition_year}
        OR (open_dt >= make_date(${partition_year} - 1, 12, 31) AND open_dt < make_date(${partition_year} + 1, 1, 2)),
    to_utc_timestamp(open_dt, 'America/New_York'),
    closed_dt,
    sla_target_dt,
    case_status,
    on_time,
    case_title,
    subject,
    reason,
    type,
    department,
    queue,
    source,
    closure_reason,
    CAST(NULL AS STRING),
    location,
    location_street_name,
    neighborhood,
    location_zipcode,
    ward,
    precinct,
    police_district,
    fire_district,
    pwd_district,
    city_council_district,
    latitude,
    longitude
FROM legacy_v2
UNION ALL
SELECT
    case_id,
    'new_system',
    'new_system',
    3,
    source_year,
    source_row,
    source_year = ${partition_year}
        OR (open_date >= make_date(${partition_year} - 1, 12, 31) AND open_date < make_date(${partition_year} + 1, 1, 2)),
    open_date,
    close_date,
    target_close_date,
    case_status,
    on_time,
    CAST(NULL AS STRING),
    CAST(NULL AS STRING),
    case_topic,
    service_name,
    assigned_department,
    assigned_team,
    report_source,
    closure_reason,
    closure_comments,
    full_address,
    street_name,
    neighborhood,
    zip_code,
    ward,
    -- The new system numbers precincts within a ward (01); legacy codes are ward and precinct (0301).
    CASE
        WHEN regexp_extract(ward, '([0-9]+)', 1) <> '' AND regexp_extract(precinct, '^ *([0-9]{1,2}) *$', 1) <> ''
        THEN lpad(regexp_extract(ward, '([0-9]+)', 1), 2, '0') || lpad(regexp_extract(precinct, '([0-9]+)', 1), 2, '0')
    END,
    police_district,
    fire_district,
    public_works_district,
    city_council_district,
    latitude,
    longitude
FROM new_system;

-- A case belongs to the year of its open time in Boston (opened_wall is that wall clock). A case without an
-- open time, or opened more than a year away from the file that lists it, stays in its file's year: a partition
-- only ever reads its neighbours, so anything else could not land anywhere.
CREATE OR REPLACE TEMPORARY VIEW silver_years AS
SELECT
    *,
    CASE
        WHEN year(opened_wall) BETWEEN source_year - 1 AND source_year + 1 THEN CAST(year(opened_wall) AS INT)
        ELSE CAST(source_year AS INT)
    END AS year
FROM silver_conformed;

-- The cases this partition decides, those with at least one copy in the partition's year, and how many copies
-- of each were read. Only the id and the opening wall clock of each copy are needed here.
-- kept_copies counts the copies that stay in their file's year (no open time, or one more than a year away).
CREATE OR REPLACE TEMPORARY VIEW silver_decided AS
SELECT
    case_id,
    count(*) AS copies,
    sum(CASE WHEN coalesce(year(opened_wall) <> year, true) THEN 1 ELSE 0 END) AS kept_copies
FROM silver_years
WHERE case_id IS NOT NULL
GROUP BY case_id
HAVING max(CASE WHEN year = ${partition_year} THEN 1 ELSE 0 END) = 1;

-- Dedupe rule: of a case's copies, the latest known state wins: a closed copy over an open one, then the later
-- close time, then the newer schema generation (a republished file over the original), then the later file,
-- then the later row of that file (generation, file and row identify a copy, so the choice is the same on both
-- engines). Most cases have one copy, which wins unranked: only the copies of cases read more than once are
-- ranked, on thin columns. Two steps, so that each to_utc_timestamp reads a column: nested, DuckDB's macro
-- would be expanded inside itself.
CREATE OR REPLACE TEMPORARY VIEW silver_repeated_walls AS
SELECT
    y.case_id,
    y.source_generation,
    y.generation_rank,
    y.source_year,
    y.source_row,
    y.opened_wall,
    y.year,
    CASE WHEN y.source_generation = 'v2' THEN to_utc_timestamp(y.closed_as_written, 'America/New_York')
    ELSE y.closed_as_written END AS closed_wall
FROM silver_years y
JOIN silver_decided d ON y.case_id = d.case_id
WHERE d.copies > 1;

CREATE OR REPLACE TEMPORARY VIEW silver_repeated_ranked AS
SELECT
    *,
    row_number() OVER (
        PARTITION BY case_id
        ORDER BY
            to_utc_timestamp(closed_wall, 'America/New_York') DESC NULLS LAST,
            generation_rank DESC,
            source_year DESC,
            source_row DESC
    ) AS copy_rank
FROM silver_repeated_walls;

-- The rows written: every copy opened in the partition's year, but the copies that lost to another copy of
-- their case. Only these rows' wide columns are read, and their closing and SLA times made wall clocks.
CREATE OR REPLACE TEMPORARY VIEW silver_written_walls AS
SELECT
    y.*,
    CASE WHEN y.source_generation = 'v2' THEN to_utc_timestamp(y.closed_as_written, 'America/New_York')
    ELSE y.closed_as_written END AS closed_wall,
    CASE WHEN y.source_generation = 'v2' THEN to_utc_timestamp(y.sla_due_as_written, 'America/New_York')
    ELSE y.sla_due_as_written END AS sla_due_wall
FROM silver_years y
LEFT JOIN (
    SELECT source_generation, source_year, source_row
    FROM silver_repeated_ranked
    WHERE copy_rank > 1
) lost
    ON y.source_generation = lost.source_generation
    AND y.source_year = lost.source_year
    AND y.source_row = lost.source_row
WHERE y.in_window AND y.year = ${partition_year} AND y.case_id IS NOT NULL AND lost.source_row IS NULL;

CREATE OR REPLACE TEMPORARY VIEW silver_written AS
SELECT
    *,
    to_utc_timestamp(opened_wall, 'America/New_York') AS opened_at,
    to_utc_timestamp(closed_wall, 'America/New_York') AS closed_at,
    to_utc_timestamp(sla_due_wall, 'America/New_York') AS sla_due_at
FROM silver_written_walls;

CREATE OR REPLACE TEMPORARY VIEW silver_service_requests AS
SELECT
    CAST(case_id AS STRING) AS case_id,
    CAST(source_system AS STRING) AS source_system,
    CAST(source_generation AS STRING) AS source_generation,
    CAST(source_year AS INT) AS source_year,
    opened_at,
    closed_at,
    sla_due_at,
    CAST(nullif(trim(case_status), '') AS STRING) AS case_status,
    CAST(CASE upper(trim(on_time_text)) WHEN 'ONTIME' THEN true WHEN 'OVERDUE' THEN false END AS BOOLEAN) AS on_time,
    CAST(nullif(trim(case_title), '') AS STRING) AS case_title,
    CAST(nullif(trim(subject), '') AS STRING) AS subject,
    CAST(nullif(trim(case_category), '') AS STRING) AS case_category,
    CAST(nullif(trim(case_type), '') AS STRING) AS case_type,
    CAST(nullif(trim(department), '') AS STRING) AS department,
    CAST(nullif(trim(queue), '') AS STRING) AS queue,
    CAST(nullif(trim(channel), '') AS STRING) AS channel,
    CAST(nullif(trim(closure_reason), '') AS STRING) AS closure_reason,
    CAST(nullif(trim(closure_comments), '') AS STRING) AS closure_comments,
    CAST(nullif(trim(address), '') AS STRING) AS address,
    CAST(nullif(trim(street_name), '') AS STRING) AS street_name,
    CAST(nullif(trim(neighborhood), '') AS STRING) AS neighborhood,
    -- 02115 as published, 2115.0 after a pass through pandas, 02115-1234 with ZIP+4: all become 02115.
    CAST(
        lpad(nullif(regexp_extract(zipcode_text, '^ *([0-9]{3,5})([.]0*)?(-[0-9]{4})? *$', 1), ''), 5, '0') AS STRING
    ) AS zipcode,
    -- Ward 3, 3 and 03 are one ward.
    CAST(nullif(regexp_extract(ward_text, '^ *(Ward)? *0*([0-9]+) *$', 2), '') AS INT) AS ward,
    CAST(lpad(nullif(regexp_extract(precinct_text, '^ *([0-9]{3,4}) *$', 1), ''), 4, '0') AS STRING) AS precinct,
    CAST(nullif(trim(police_district), '') AS STRING) AS police_district,
    CAST(nullif(trim(fire_district), '') AS STRING) AS fire_district,
    CAST(nullif(trim(public_works_district), '') AS STRING) AS public_works_district,
    CAST(nullif(trim(city_council_district), '') AS STRING) AS city_council_district,
    -- 42.3594, -71.0587 is the legacy CRM's default location (City Hall), not where the case is.
    CAST(
        CASE
            WHEN latitude = CAST(42.3594 AS DOUBLE) AND longitude = CAST(-71.0587 AS DOUBLE) THEN NULL
            WHEN latitude = 0 OR longitude = 0 THEN NULL
            ELSE latitude
        END AS DOUBLE
    ) AS latitude,
    CAST(
        CASE
            WHEN latitude = CAST(42.3594 AS DOUBLE) AND longitude = CAST(-71.0587 AS DOUBLE) THEN NULL
            WHEN latitude = 0 OR longitude = 0 THEN NULL
            ELSE longitude
        END AS DOUBLE
    ) AS longitude,
    -- Filled by the runner for a case the published year held that no bronze file lists any more (withdrawn.py).
    CASE WHEN false THEN opened_at END AS withdrawn_at,
    CAST(year AS INT) AS year
FROM silver_written;

-- The ledger of the cases this partition decided: copies read, copies merged, cases whose winning copy belongs
-- to a neighbouring year (that partition writes them), cases kept in their file's year, and rows without an id
-- (which no rule can place; the ledger check fails on them). A case read once is its own winner, in the
-- partition's year: only the ranked repeated cases can move to a neighbour.
CREATE OR REPLACE TEMPORARY VIEW silver_ledger AS
SELECT
    CAST(decided.candidate_rows AS BIGINT) AS candidate_rows,
    CAST(decided.duplicates_merged AS BIGINT) AS duplicates_merged,
    CAST(repeated.moved_to_neighbour_year AS BIGINT) AS moved_to_neighbour_year,
    CAST(decided.kept_once_read + repeated.kept_repeated AS BIGINT) AS kept_in_file_year,
    unplaceable.rows_without_case_id
FROM (
    SELECT
        coalesce(sum(copies), 0) AS candidate_rows,
        coalesce(sum(copies - 1), 0) AS duplicates_merged,
        coalesce(sum(CASE WHEN copies = 1 THEN kept_copies ELSE 0 END), 0) AS kept_once_read
    FROM silver_decided
) decided
CROSS JOIN (
    SELECT
        coalesce(sum(CASE WHEN copy_rank = 1 AND year <> ${partition_year} THEN 1 ELSE 0 END), 0)
            AS moved_to_neighbour_year,
        coalesce(sum(CASE WHEN copy_rank = 1 AND year = ${partition_year} AND coalesce(year(opened_wall) <> year, true)
                          THEN 1 ELSE 0 END), 0) AS kept_repeated
    FROM silver_repeated_ranked
) repeated
CROSS JOIN (
    SELECT CAST(count(*) AS BIGINT) AS rows_without_case_id
    FROM silver_years
    WHERE case_id IS NULL AND year = ${partition_year}
) unplaceable;
