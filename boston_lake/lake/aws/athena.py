"""SQL on AWS: Athena over the Glue catalog, answering with a pyarrow Table like query.DuckDBQueryEngine.

Athena returns every value as text plus each column's SQL type; the table is rebuilt with Arrow types
from those, so `bigint` comes back int64 and `timestamp` a timestamp, not strings that merely look so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from botocore.exceptions import BotoCoreError, ClientError

from boston_lake.lake.aws.session import Backoff, Poller, WaitTimedOut, describe_error
from boston_lake.lake.query.engine import QueryError

_ARROW_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "float": pa.float32(),
    "real": pa.float32(),
    "double": pa.float64(),
    "char": pa.string(),
    "varchar": pa.string(),
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}
_FINISHED = {"SUCCEEDED", "FAILED", "CANCELLED"}
# Most queries of this lake finish in seconds: poll fast first, never slower than every 10 s.
QUERY_POLLING = Backoff(initial_seconds=0.5, factor=2, max_seconds=10)


class AthenaQueryError(QueryError):
    """A query could not run, failed, or timed out; the message carries Athena's reason and the SQL."""


def arrow_type(column: dict[str, Any]) -> pa.DataType:
    """The Arrow type for one ColumnInfo. Types Arrow cannot take from Athena's text (arrays, maps, rows,
    json, varbinary, time zones, intervals) stay text exactly as Athena rendered them."""
    kind = column["Type"].lower()
    if kind == "decimal":
        return pa.decimal128(int(column["Precision"]), int(column.get("Scale", 0)))
    return _ARROW_TYPES.get(kind, pa.string())


class AthenaQueryEngine:
    """`query(sql) -> pyarrow.Table`, run by Athena in `workgroup` against the Glue `database`."""

    def __init__(
        self,
        client: Any,
        database: str,
        workgroup: str = "primary",
        output_location: str | None = None,
        *,
        timeout_seconds: float = 600,
        backoff: Backoff = QUERY_POLLING,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = client
        self.database = database
        self.workgroup = workgroup
        self.output_location = output_location
        self.timeout_seconds = timeout_seconds
        self.backoff = backoff
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"AthenaQueryEngine(database={self.database!r}, workgroup={self.workgroup!r})"

    # Used like DuckDBQueryEngine (`with engine: engine.query(...)`); Athena holds no connection to release.
    def __enter__(self) -> AthenaQueryEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def query(self, sql: str) -> pa.Table:
        query_id = self._start(sql)
        execution = self._wait(query_id, sql)
        return self._results(query_id, execution, sql)

    def _start(self, sql: str) -> str:
        request: dict[str, Any] = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.workgroup,
        }
        if self.output_location:
            request["ResultConfiguration"] = {"OutputLocation": self.output_location}
        try:
            return self.client.start_query_execution(**request)["QueryExecutionId"]
        except ClientError as error:
            raise AthenaQueryError(f"Athena refused the query: {describe_error(error)}\n{sql}") from error
        except BotoCoreError as error:
            raise AthenaQueryError(f"could not reach Athena: {error}\n{sql}") from error

    def _wait(self, query_id: str, sql: str) -> dict[str, Any]:
        poller = Poller(self.timeout_seconds, self.backoff, clock=self._clock, sleep=self._sleep)
        while True:
            execution = self._call(query_id, sql, "get_query_execution", QueryExecutionId=query_id)["QueryExecution"]
            status = execution["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                return execution
            if state in _FINISHED:
                reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage")
                raise AthenaQueryError(f"Athena query {query_id} {state}: {reason or 'Athena gave no reason'}\n{sql}")
            try:
                poller.pause(f"Athena query {query_id} (it is {state})")
            except WaitTimedOut as timeout:
                self._call(query_id, sql, "stop_query_execution", QueryExecutionId=query_id)
                raise AthenaQueryError(f"{timeout}; the query was cancelled\n{sql}") from timeout

    def _results(self, query_id: str, execution: dict[str, Any], sql: str) -> pa.Table:
        columns: list[dict[str, Any]] | None = None
        values: list[list[str | None]] = []
        # The first row of a SELECT's first page repeats the column names; DDL results (SHOW ...) have none.
        skip_header = execution.get("StatementType") == "DML"
        try:
            pages = self.client.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
            for page in pages:
                result_set = page["ResultSet"]
                if columns is None:
                    columns = result_set["ResultSetMetadata"]["ColumnInfo"]
                    values = [[] for _ in columns]
                rows = result_set.get("Rows", [])
                if skip_header:
                    rows, skip_header = rows[1:], False
                for row in rows:
                    if len(row["Data"]) != len(values):
                        raise AthenaQueryError(
                            f"Athena query {query_id} returned a row of {len(row['Data'])} values for "
                            f"{len(values)} columns\n{sql}"
                        )
                    for position, datum in enumerate(row["Data"]):
                        values[position].append(datum.get("VarCharValue"))
        except ClientError as error:
            raise AthenaQueryError(
                f"reading the results of Athena query {query_id} failed: {describe_error(error)}\n{sql}"
            ) from error
        return pa.Table.from_arrays(
            [
                self._typed(query_id, column, column_values)
                for column, column_values in zip(columns or [], values, strict=True)
            ],
            names=[column["Name"] for column in columns or []],
        )

    def _typed(self, query_id: str, column: dict[str, Any], texts: list[str | None]) -> pa.Array:
        target = arrow_type(column)
        try:
            return pc.cast(pa.array(texts, pa.string()), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise AthenaQueryError(
                f"Athena query {query_id}: column {column['Name']!r} of type {column['Type']} holds a value "
                f"that is not {target}: {error}"
            ) from error

    def _call(self, query_id: str, sql: str, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return getattr(self.client, operation)(**params)
        except ClientError as error:
            raise AthenaQueryError(
                f"{operation} for Athena query {query_id} failed: {describe_error(error)}\n{sql}"
            ) from error
