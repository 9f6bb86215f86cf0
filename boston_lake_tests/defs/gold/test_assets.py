"""Gold assets through Dagster on the embedded target: built from silver, committed, charted, kept current."""

import base64
import re

import pytest
from dagster import AssetMaterialization, evaluate_automation_conditions, materialize

from boston_lake.defs.gold import GOLD_ASSETS, gold_key
from boston_lake.defs.keys import SILVER_KEY
from boston_lake.lake.answers import charts
from boston_lake.lake.zones.gold import INTAKE, SERVICE_LEVELS
from boston_lake_tests.support.silver_samples import silver_sample_rows, write_silver_samples, write_silver_year

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
PNG_URI = re.compile(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def materialize_gold(defs, instance, first: str, last: str):
    return materialize(
        GOLD_ASSETS,
        instance=instance,
        resources=defs.resources,
        tags={RANGE[0]: first, RANGE[1]: last},
        run_config=QUIET,
        raise_on_error=False,
    )


def metadata_by_partition(result, table):
    return {
        event.partition: event.metadata
        for event in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
        if event.asset_key == gold_key(table)
    }


def embedded_pngs(markdown: str) -> dict[str, bytes]:
    return {title: base64.b64decode(data) for title, data in PNG_URI.findall(markdown)}


@pytest.mark.slow
def test_gold_years_are_built_committed_and_charted(local_defs, dagster_instance, lake_home):
    write_silver_samples(lake_home)
    result = materialize_gold(local_defs, dagster_instance, "2025", "2026")
    assert result.success

    levels = metadata_by_partition(result, SERVICE_LEVELS)
    assert set(levels) == {"2025", "2026"}
    rows = local_defs.resources["catalog"].query(
        "SELECT year, count(*) AS n FROM boston311.service_levels GROUP BY year ORDER BY year"
    )
    assert {year: levels[year]["dagster/row_count"].value for year in levels} == dict(
        zip(map(str, rows.column("year").to_pylist()), rows.column("n").to_pylist(), strict=True)
    )
    assert levels["2025"]["dagster/table_name"].value == "boston311.service_levels"
    columns = {column.name: column.description for column in levels["2025"]["dagster/column_schema"].schema.columns}
    assert columns == dict(SERVICE_LEVELS.columns)  # gold's own words: its on_time is a count, not a verdict
    assert levels["2025"]["table_rows_all_years"].value == sum(rows.column("n").to_pylist())  # every year
    images = embedded_pngs(levels["2026"]["charts"].value)  # the run's newest year carries the charts
    assert list(images) == [
        "Cases per month by source system",
        "Median hours to close by neighborhood and year",
        "On-time share by department and year",
    ]
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000 for png in images.values())
    assert levels["2025"]["charts"].value == "on the 2026 materialization of the same run (years 2025-2026)"

    intake = metadata_by_partition(result, INTAKE)
    assert list(embedded_pngs(intake["2026"]["charts"].value)) == ["Cases opened by weekday and hour, 2026"]
    assert intake["2026"]["silver_rows"].value == 1339


@pytest.mark.slow
def test_a_run_of_many_years_draws_each_chart_once_on_its_newest_year(
    local_defs, dagster_instance, lake_home, monkeypatch
):
    write_silver_samples(lake_home)
    drawn = []

    def counted(figure):
        drawn.append(figure.axes[0].get_title())
        return draw(figure)

    draw = charts._png
    monkeypatch.setattr(charts, "_png", counted)
    result = materialize_gold(local_defs, dagster_instance, "2021", "2023")
    assert result.success

    assert sorted(drawn) == [
        "Cases opened by weekday and hour, 2023",
        "Cases opened per month, by source system",
        "Median hours to close, by neighborhood and year",
        "On-time share, by department and year",
    ]
    for table, titles in ((SERVICE_LEVELS, 3), (INTAKE, 1)):
        metadata = metadata_by_partition(result, table)
        assert set(metadata) == {"2021", "2022", "2023"}
        assert len(embedded_pngs(metadata["2023"]["charts"].value)) == titles
        for year in ("2021", "2022"):
            assert metadata[year]["charts"].value == "on the 2023 materialization of the same run (years 2021-2023)"


def test_a_gold_year_without_silver_fails_naming_it(local_defs, dagster_instance, lake_home):
    write_silver_samples(lake_home)
    result = materialize_gold(local_defs, dagster_instance, "2024", "2025")
    assert not result.success
    causes = [event.event_specific_data.error.cause.message for event in result.get_step_failure_events()]
    assert sorted(cause.split(":")[1] for cause in causes) == [" gold/intake 2024", " gold/service_levels 2024"]
    assert all("the silver table boston311.service_requests has no data for 2024" in cause for cause in causes)


# Silver and gold built over and over by the automation sensor's ticks: the slow tier.
@pytest.mark.slow
def test_gold_follows_every_silver_year_that_is_updated(local_defs, dagster_instance, lake_home):
    write_silver_samples(lake_home)
    gold = [gold_key(SERVICE_LEVELS), gold_key(INTAKE)]

    def requested(cursor):
        evaluation = evaluate_automation_conditions(local_defs, dagster_instance, cursor=cursor)
        return {
            key.to_user_string(): sorted(evaluation.get_requested_partitions(key)) for key in gold
        }, evaluation.cursor

    wanted, cursor = requested(None)
    assert wanted == {"gold/service_levels": [], "gold/intake": []}  # no silver year materialized yet

    for year in ("2013", "2023"):  # old years, not only the running one
        dagster_instance.report_runless_asset_event(AssetMaterialization(SILVER_KEY, partition=year))
    wanted, cursor = requested(cursor)
    assert wanted == {"gold/service_levels": ["2013", "2023"], "gold/intake": ["2013", "2023"]}

    assert materialize_gold(local_defs, dagster_instance, "2013", "2013").success
    assert materialize_gold(local_defs, dagster_instance, "2023", "2023").success
    wanted, cursor = requested(cursor)
    assert wanted == {"gold/service_levels": [], "gold/intake": []}  # unchanged silver rebuilds nothing

    dagster_instance.report_runless_asset_event(AssetMaterialization(SILVER_KEY, partition="2023"))
    wanted, _ = requested(cursor)
    assert wanted == {"gold/service_levels": ["2023"], "gold/intake": ["2023"]}


@pytest.mark.slow
def test_a_gold_year_whose_silver_year_holds_no_case_is_observed_not_materialized(
    local_defs, dagster_instance, lake_home
):
    write_silver_samples(lake_home)
    write_silver_year(lake_home, 2024, silver_sample_rows().slice(0, 0))

    result = materialize_gold(local_defs, dagster_instance, "2024", "2025")
    assert result.success
    assert set(metadata_by_partition(result, INTAKE)) == {"2025"}  # 2024 is not filled with 0 rows
    for table in (SERVICE_LEVELS, INTAKE):
        assert dagster_instance.get_materialized_partitions(gold_key(table)) == {"2025"}
        (observed,) = [
            event.asset_observation_data.asset_observation
            for event in result.all_events
            if event.event_type_value == "ASSET_OBSERVATION"
            and event.asset_observation_data.asset_observation.asset_key == gold_key(table)
        ]
        assert observed.partition == "2024" and observed.metadata["rows"].value == 0
        assert observed.description == (
            f"gold/{table.name} 2024: no rows, not materialized: its silver year holds 0 rows"
        )
