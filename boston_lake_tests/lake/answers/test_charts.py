"""The multi-year charts' cells: each answer in its row and year, nothing added, nothing dropped."""

import pyarrow as pa
import pytest

from boston_lake.lake.answers import charts
from boston_lake.lake.answers.charts import NOT_GIVEN, Grid, by_label_and_year

PNG = b"\x89PNG\r\n\x1a\n"


def answers(rows: list[tuple[str, str | None, float | None]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"year": year, "department": department, "on_time_share": share} for year, department, share in rows],
        schema=pa.schema([("year", pa.string()), ("department", pa.string()), ("on_time_share", pa.float64())]),
    )


def test_each_answer_lands_in_its_row_and_year_and_a_missing_one_stays_empty():
    grid = by_label_and_year(
        answers([("2024", "PWDx", 0.5), ("2023", None, 0.25), ("2023", "BTDT", 0.75), ("2024", "BTDT", None)]),
        "department",
        "on_time_share",
    )
    assert grid == Grid(
        rows=["BTDT", "PWDx", NOT_GIVEN],  # alphabetical, the unnamed last
        columns=["2023", "2024"],
        values=[[0.75, None], [None, 0.5], [0.25, None]],
    )


def test_two_answers_for_one_cell_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"department 'PWDx' has two on_time_share values in 2024"):
        by_label_and_year(answers([("2024", "PWDx", 0.5), ("2024", "PWDx", 0.6)]), "department", "on_time_share")


def test_a_heatmap_is_drawn_for_years_with_gaps_and_for_no_answer_at_all():
    some = answers([("2011", "PWDx", 0.5), ("2026", "BTDT", 1.0)])
    assert charts.on_time_share_by_department_png(some).startswith(PNG)
    assert charts.on_time_share_by_department_png(answers([])).startswith(PNG)
