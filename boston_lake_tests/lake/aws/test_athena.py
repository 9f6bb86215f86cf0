from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from boston_lake.lake.aws.athena import AthenaQueryEngine, AthenaQueryError
from boston_lake.lake.aws.session import Backoff
from boston_lake.lake.query.engine import QueryError
from boston_lake_tests.support.moto_server import LakeBuckets, MotoServer

SQL = "SELECT case_enquiry_id, ward FROM legacy_requests WHERE year = '2013'"


def column(name: str, kind: str, precision: int = 0, scale: int = 0) -> dict[str, Any]:
    return {
        "CatalogName": "hive",
        "SchemaName": "",
        "TableName": "",
        "Name": name,
        "Label": name,
        "Type": kind,
        "Precision": precision,
        "Scale": scale,
        "Nullable": "UNKNOWN",
        "CaseSensitive": False,
    }


def row(*values: str | None) -> dict[str, Any]:
    return {"Data": [{} if value is None else {"VarCharValue": value} for value in values]}


class FakeTime:
    def __init__(self, on_sleep: Callable[[], None] = lambda: None):
        self.now = 0.0
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept.append(seconds)
        self.on_sleep()


@pytest.fixture
def athena(aws_client: Callable[[str], Any]) -> Any:
    return aws_client("athena")


def engine(athena: Any, time: FakeTime, output_location: str | None = None, timeout: float = 30) -> AthenaQueryEngine:
    return AthenaQueryEngine(
        athena,
        "boston311",
        "primary",
        output_location,
        timeout_seconds=timeout,
        backoff=Backoff(initial_seconds=1, factor=2, max_seconds=8),
        clock=time.clock,
        sleep=time.sleep,
    )


def latest_query_id(athena: Any) -> str:
    return athena.list_query_executions(WorkGroup="primary")["QueryExecutionIds"][-1]


def test_results_come_back_typed_without_the_header_row(aws_env: MotoServer, athena: Any, aws_buckets: LakeBuckets):
    columns = [
        column("case_enquiry_id", "bigint"),
        column("n", "integer"),
        column("latitude", "double"),
        column("on_time", "boolean"),
        column("ward", "varchar"),
        column("open_dt", "timestamp", 3),
        column("day", "date"),
        column("cost", "decimal", 10, 2),
        column("tags", "array"),
    ]
    header = row(*(c["Name"] for c in columns))
    aws_env.queue_athena_results(
        {
            "column_info": columns,
            "rows": [
                header,
                row(
                    "101002300001",
                    "7",
                    "42.3601",
                    "true",
                    "Ward 3",
                    "2013-01-01 08:30:00.123",
                    "2013-01-01",
                    "12.50",
                    "[a, b]",
                ),
                row(None, None, "NaN", "false", "", None, None, None, None),
            ],
        }
    )
    with engine(athena, FakeTime(), f"s3://{aws_buckets.code}/athena/") as athena_engine:
        table = athena_engine.query(SQL)
    assert table.schema == pa.schema(
        [
            ("case_enquiry_id", pa.int64()),
            ("n", pa.int32()),
            ("latitude", pa.float64()),
            ("on_time", pa.bool_()),
            ("ward", pa.string()),
            ("open_dt", pa.timestamp("us")),
            ("day", pa.date32()),
            ("cost", pa.decimal128(10, 2)),
            ("tags", pa.string()),
        ]
    )
    first, second = table.to_pylist()
    assert first == {
        "case_enquiry_id": 101002300001,
        "n": 7,
        "latitude": 42.3601,
        "on_time": True,
        "ward": "Ward 3",
        "open_dt": dt.datetime(2013, 1, 1, 8, 30, 0, 123000),
        "day": dt.date(2013, 1, 1),
        "cost": Decimal("12.50"),
        "tags": "[a, b]",
    }
    assert second["case_enquiry_id"] is None and second["ward"] == "" and second["latitude"] != second["latitude"]

    execution = athena.get_query_execution(QueryExecutionId=latest_query_id(athena))["QueryExecution"]
    assert execution["Query"] == SQL
    assert execution["QueryExecutionContext"] == {"Database": "boston311"}
    assert execution["WorkGroup"] == "primary"
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(f"s3://{aws_buckets.code}/athena/")


def test_statements_without_a_header_row_keep_their_first_row(aws_env: MotoServer, athena: Any):
    aws_env.queue_athena_results(
        {"column_info": [column("tab_name", "string")], "rows": [row("legacy_requests"), row("new_system_requests")]}
    )
    table = engine(athena, FakeTime()).query("SHOW TABLES")
    assert table.column("tab_name").to_pylist() == ["legacy_requests", "new_system_requests"]


def test_an_empty_result_keeps_its_columns(aws_env: MotoServer, athena: Any):
    aws_env.queue_athena_results(
        {"column_info": [column("case_enquiry_id", "bigint")], "rows": [row("case_enquiry_id")]}
    )
    table = engine(athena, FakeTime()).query(SQL)
    assert table.num_rows == 0 and table.schema == pa.schema([("case_enquiry_id", pa.int64())])


def test_a_queued_query_is_polled_with_backoff_until_it_succeeds(aws_env: MotoServer, athena: Any):
    # Every second get_query_execution moves moto's query one step: QUEUED -> RUNNING -> SUCCEEDED.
    aws_env.set_transition("athena::execution", {"progression": "manual", "times": 2})
    aws_env.queue_athena_results({"column_info": [column("n", "bigint")], "rows": [row("n"), row("1")]})
    time = FakeTime()
    assert engine(athena, time).query("SELECT 1 AS n").column("n").to_pylist() == [1]
    assert time.slept == [1, 2, 4]


def test_a_failed_query_reports_its_state_and_sql(aws_env: MotoServer, athena: Any):
    aws_env.set_transition("athena::execution", {"progression": "manual", "times": 1000})
    time = FakeTime(on_sleep=lambda: aws_env.fail_query(latest_query_id(athena)))
    # A QueryError, as the DuckDB engine raises, so callers handle both engines alike.
    with pytest.raises(
        QueryError, match=r"Athena query [0-9a-f-]+ FAILED: Athena gave no reason\nSELECT case_enquiry_id"
    ):
        engine(athena, time).query(SQL)


def test_a_cancelled_query_is_reported(aws_env: MotoServer, athena: Any):
    aws_env.set_transition("athena::execution", {"progression": "manual", "times": 1000})
    time = FakeTime(on_sleep=lambda: athena.stop_query_execution(QueryExecutionId=latest_query_id(athena)))
    with pytest.raises(AthenaQueryError, match=r"CANCELLED.*\n" + SQL.replace("(", r"\(")):
        engine(athena, time).query(SQL)


def test_a_query_that_outlasts_the_timeout_is_cancelled(aws_env: MotoServer, athena: Any):
    aws_env.set_transition("athena::execution", {"progression": "manual", "times": 1000})
    time = FakeTime()
    with pytest.raises(
        AthenaQueryError, match=r"gave up waiting for Athena query .* after 30 s .*the query was cancelled"
    ):
        engine(athena, time, timeout=30).query(SQL)
    assert time.now == 30
    status = athena.get_query_execution(QueryExecutionId=latest_query_id(athena))["QueryExecution"]["Status"]
    assert status["State"] == "CANCELLED"


def test_a_value_that_does_not_fit_its_column_type_names_the_column(aws_env: MotoServer, athena: Any):
    aws_env.queue_athena_results(
        {"column_info": [column("case_enquiry_id", "bigint")], "rows": [row("case_enquiry_id"), row("BCS-1")]}
    )
    with pytest.raises(
        AthenaQueryError, match=r"column 'case_enquiry_id' of type bigint holds a value that is not int64"
    ):
        engine(athena, FakeTime()).query(SQL)
