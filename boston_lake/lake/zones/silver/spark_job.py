"""Silver on Spark (Glue 5 runs Spark 3.5): the same SQL text as DuckDB, on a plain SparkSession.

Self-contained on purpose: it imports only pyspark, never the rest of the boston_lake package, so that it can be
shipped alone as a Glue job's script. It needs Spark 3.5 or later: each row's position in its file comes from
the Parquet reader's `_metadata.row_index`. What to read and run comes as a plan (`inputs.spark_plan`): the files of
each input view, the SQL statements, the columns of the file.
"""

from __future__ import annotations

from typing import Any


def spark_session(app_name: str = "boston_lake_silver") -> Any:
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.appName(app_name)
        # The transform reads wall clocks as UTC and writes instants: the session must not shift them.
        .config("spark.sql.session.timeZone", "UTC")
        # Spark's default is INT96; Athena, DuckDB and pyarrow read TIMESTAMP_MICROS as timestamps in UTC.
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .getOrCreate()
    )


def register_inputs(spark: Any, plan: dict[str, Any]) -> None:
    """Each input view: the union of its bronze files (the plan's columns, the file's year, each row's position
    in its file), or empty with its DDL."""
    from pyspark.sql import functions as F

    for view, spec in plan["views"].items():
        frame = None
        for source in spec["files"]:
            part = spark.read.parquet(source["path"]).select(
                *spec["columns"],
                F.lit(int(source["year"])).cast("int").alias("source_year"),
                F.col("_metadata.row_index").alias("source_row"),
            )
            frame = part if frame is None else frame.unionByName(part)
        if frame is None:
            frame = spark.createDataFrame([], spec["empty_ddl"])
        frame.createOrReplaceTempView(view)


def transform(spark: Any, plan: dict[str, Any]) -> tuple[Any, dict[str, int]]:
    """The silver rows of the plan's year (file columns only) and the ledger, after running the SQL text."""
    register_inputs(spark, plan)
    for statement in plan["statements"]:
        spark.sql(statement)
    for view in plan["computed_once"]:
        spark.table(view).cache()  # Spark's cache manager serves every later plan that reads the view from it
    ledger = {name: int(value) for name, value in spark.table("silver_ledger").first().asDict().items()}
    rows = spark.table("silver_service_requests").select(*plan["file_columns"])
    return rows, ledger


def write_one_file(rows: Any, directory: str) -> None:
    rows.coalesce(1).write.mode("overwrite").option("compression", "zstd").parquet(directory)


def publish_count(spark: Any, directory: str) -> int:
    """Rows in what was written (Parquet footers only)."""
    return int(spark.read.parquet(directory).count())


def main() -> None:
    """The Glue job: read the plan Dagster sent, build the year into its staging prefix, report back.

    Dagster (PipesGlueClient) passes `--dagster-pipes-context` and `--dagster-pipes-messages`; the context, under
    the lake bucket's `_pipes/`, carries the plan as the extra `silver_plan`. The year is written as one Parquet
    object under the plan's `staging_uri`; the Dagster side publishes it to the year's key in one copy.
    """
    import boto3
    from dagster_pipes import (
        PipesCliArgsParamsLoader,
        PipesS3ContextLoader,
        PipesS3MessageWriter,
        open_dagster_pipes,
    )

    s3 = boto3.client("s3")
    with open_dagster_pipes(
        context_loader=PipesS3ContextLoader(client=s3),
        message_writer=PipesS3MessageWriter(client=s3),
        params_loader=PipesCliArgsParamsLoader(),
    ) as pipes:
        plan = pipes.get_extra("silver_plan")
        spark = spark_session()
        rows, ledger = transform(spark, plan)
        write_one_file(rows, plan["staging_uri"])
        written = publish_count(spark, plan["staging_uri"])
        pipes.log.info(f"silver {plan['year']}: {written} rows staged at {plan['staging_uri']}")
        pipes.report_custom_message({"year": plan["year"], "rows": written, "ledger": ledger})


if __name__ == "__main__":
    main()
