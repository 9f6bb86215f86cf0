"""The questions a gold run charts from its own tables give the numbers the catalog's engine gives."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from boston_lake.lake.answers import questions
from boston_lake.lake.catalog.iceberg import IcebergError
from boston_lake.lake.targets import LocalTarget
from boston_lake.lake.zones.gold import GOLD_TABLES, INTAKE, SERVICE_LEVELS

GOLD_QUESTIONS = (
    questions.cases_per_month,
    questions.median_hours_by_neighborhood,
    questions.on_time_share_by_department,
    questions.intake_by_weekday_and_hour,
)


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in table.column_names])


@pytest.mark.slow
@pytest.mark.parametrize("question", GOLD_QUESTIONS, ids=lambda question: question.__name__)
def test_gold_answers_equal_the_catalog_engines(gold_lake_home: Path, question) -> None:
    target = LocalTarget(gold_lake_home)
    through_catalog = question(target.query)
    assert through_catalog.num_rows > 0
    with questions.gold_answers(target.iceberg(), GOLD_TABLES, "64MB") as query:
        assert _sorted(question(query)).equals(_sorted(through_catalog))  # ties come in either order


@pytest.mark.slow
def test_gold_answers_of_a_table_with_no_year_name_it(gold_lake_home: Path, tmp_path: Path) -> None:
    empty = LocalTarget(tmp_path / "empty").iceberg()
    with pytest.raises(IcebergError, match=r"boston311\.intake holds no year yet"):
        with questions.gold_answers(empty, [INTAKE], "64MB"):
            pass
    with questions.gold_answers(LocalTarget(gold_lake_home).iceberg(), [SERVICE_LEVELS], "64MB") as query:
        with pytest.raises(Exception, match="intake"):  # only the tables asked for are there
            questions.intake_by_weekday_and_hour(query)
