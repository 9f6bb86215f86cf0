"""Silver on the aws target: `provision` creates the Glue job, the asset launches it through PipesGlueClient, and
the job script (downloaded from the moto code bucket) runs on local Spark against moto's S3. Real engines
throughout: moto over HTTP, Spark 3.5.4 (Glue 5's) in a subprocess, DuckDB for the comparison."""

import io
import logging

import pyarrow.parquet as pq
import pytest
from dagster import materialize

from boston_lake.defs.resources import build_resources
from boston_lake.defs.silver.assets import silver_service_requests
from boston_lake.lake import layout
from boston_lake.lake.aws.provision import AwsClients, apply, plan
from boston_lake.lake.aws.resources import ProvisionConfig
from boston_lake.lake.aws.session import AwsSession
from boston_lake.lake.targets import AwsTarget, LocalTarget
from boston_lake.lake.zones.silver.duckdb_build import SilverZone
from boston_lake.lake.zones.silver.glue_build import PIPES_PREFIX, script_key
from boston_lake.lake.zones.silver.model import SILVER_TABLE, SILVER_ZONE

# Each year is a Spark job in a JVM of its own: about a minute each on a loaded 2-core machine.
pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
log = logging.getLogger("test_silver_glue")


class QuietLog:
    def info(self, msg, *args):
        pass

    def warning(self, msg, *args):
        pass


@pytest.fixture
def glue_lake(aws_settings, aws_env, bronze_lake):
    """The lake as `boston-lake provision` leaves it, with the bronze samples uploaded to the lake bucket."""
    session = AwsSession("us-east-1", {"": aws_env.url})
    apply(plan(ProvisionConfig.from_settings(aws_settings.aws), AwsClients.create(session)), log)
    s3 = session.client("s3")
    for item in bronze_lake.list("bronze/"):
        s3.upload_file(str(bronze_lake.path(item.key)), aws_settings.aws.lake_bucket, item.key)
    return s3


def build_on_glue(aws_settings, runner, year):
    resources = build_resources(aws_settings, AwsTarget(aws_settings.aws, glue_job_client=runner))
    return materialize(
        [silver_service_requests], resources=resources, partition_key=str(year), run_config=QUIET, raise_on_error=False
    )


def failure_of(result) -> str:
    return str(next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error)


# One year a test, so that `make test` runs the three Spark jobs side by side.
@pytest.mark.parametrize("year", [2013, 2022, 2025], ids=["legacy_v2", "legacy_v1_beside_v2", "new_system"])
def test_a_silver_year_built_by_the_glue_job_equals_the_duckdb_year(
    aws_settings, glue_lake, spark_glue, bronze_lake, year
):
    aws = aws_settings.aws
    job = glue_lake  # noqa: F841 (provisioned and uploaded)
    glue, iam = spark_glue.glue, AwsSession("us-east-1", {"": spark_glue.endpoint_url}).client("iam")
    provisioned = glue.get_job(JobName="boston-lake-silver")["Job"]
    assert provisioned["Command"]["ScriptLocation"] == f"s3://{aws.code_bucket}/{script_key()}"
    assert provisioned["Role"].endswith(":role/boston-lake-glue-silver-job")
    assert iam.get_role(RoleName="boston-lake-glue-silver-job")["Role"]["Arn"] == provisioned["Role"]

    zone = SilverZone(LocalTarget(bronze_lake.root).iceberg(), QuietLog())
    result = build_on_glue(aws_settings, spark_glue, year)
    assert result.success, (year, failure_of(result), [spark_glue.stderr_of(r)[-3000:] for r in spark_glue.runs])
    tables = AwsTarget(aws).iceberg()
    [key] = tables.keys_by_year(SILVER_TABLE)[year]
    body = glue_lake.get_object(Bucket=aws.lake_bucket, Key=key)["Body"].read()
    from_glue = pq.read_table(io.BytesIO(body)).sort_by("case_id")
    built = zone.build(year)
    from_duckdb = pq.read_table(bronze_lake.path(built.key)).sort_by("case_id")
    assert [(f.name, f.type) for f in from_glue.schema] == [(f.name, f.type) for f in from_duckdb.schema]
    assert from_glue.num_rows == from_duckdb.num_rows > 0
    for column in from_duckdb.column_names:
        assert from_glue[column].to_pylist() == from_duckdb[column].to_pylist(), (year, column)
    metadata = result.asset_materializations_for_node("silver__service_requests")[0].metadata
    assert metadata["dagster/row_count"].value == from_duckdb.num_rows
    assert metadata["duplicates_merged"].value == built.ledger["duplicates_merged"]
    table = glue.get_table(DatabaseName=aws.database, Name=SILVER_TABLE)["Table"]
    assert table["Parameters"]["table_type"] == "ICEBERG"
    metadata_bucket, metadata_key = table["Parameters"]["metadata_location"].removeprefix("s3://").split("/", 1)
    assert glue_lake.head_object(Bucket=metadata_bucket, Key=metadata_key)["ContentLength"] > 0
    snapshot = tables.table(SILVER_TABLE).current_snapshot()
    assert metadata["snapshot_id"].value == str(snapshot.snapshot_id)

    # Asked again with the same bronze and transform, the year is left as it is: no job run.
    runs = len(spark_glue.runs)
    again = build_on_glue(aws_settings, spark_glue, year)
    assert again.success and len(spark_glue.runs) == runs
    metadata = again.asset_materializations_for_node("silver__service_requests")[0].metadata
    assert metadata["changed"].value is False and "already built by the Glue job" in metadata["reason"].value

    lake_keys = [o["Key"] for o in glue_lake.list_objects_v2(Bucket=aws.lake_bucket).get("Contents", [])]
    assert not [k for k in lake_keys if "/_staging/" in k], "every staged object was committed and removed"
    assert not [k for k in lake_keys if k.startswith(f"{PIPES_PREFIX}context/")], "the pipes context is removed"
    assert [k for k in lake_keys if k.startswith(f"{PIPES_PREFIX}messages/")], "messages stay for the lifecycle rule"
    for run_id in spark_glue.runs:  # every run pinned the provisioned script by its content-hashed key
        assert (spark_glue.workdir / run_id / script_key().rsplit("/", 1)[1]).exists()


def test_a_failing_glue_job_ends_the_run_with_glues_message(aws_settings, glue_lake, spark_glue):
    aws = aws_settings.aws
    # Bronze 2022 with its data pages overwritten: the footer still reads (Dagster plans the run), Spark cannot.
    key = layout.bronze_data_key("legacy_requests", 2022)
    data = bytearray(glue_lake.get_object(Bucket=aws.lake_bucket, Key=key)["Body"].read())
    footer = int.from_bytes(data[-8:-4], "little")
    data[4 : len(data) - 8 - footer] = b"\x07" * (len(data) - 12 - footer)
    glue_lake.put_object(Bucket=aws.lake_bucket, Key=key, Body=bytes(data))

    result = build_on_glue(aws_settings, spark_glue, 2022)
    assert not result.success
    error = failure_of(result)
    (run_id,) = spark_glue.runs
    assert f"Glue job boston-lake-silver run {run_id} completed with status FAILED" in error
    assert spark_glue.error_messages[run_id] in error
    assert f"Encountered error while reading file s3://{aws.lake_bucket}/{key}" in error  # Spark's own words
    lake_keys = [o["Key"] for o in glue_lake.list_objects_v2(Bucket=aws.lake_bucket).get("Contents", [])]
    assert not [k for k in lake_keys if k.startswith(f"{SILVER_ZONE}/boston311/{SILVER_TABLE}/data/")]
    assert not [k for k in lake_keys if "/_staging/" in k]


def test_the_concurrent_run_limit_ends_the_run_with_glues_refusal(aws_settings, aws_env, glue_lake, spark_glue):
    aws_env.set_transition("glue::job_run", {"progression": "manual", "times": 1000})  # runs stay STARTING
    for _ in range(2):  # the job's MaxConcurrentRuns, taken by runs started elsewhere
        spark_glue.glue.start_job_run(JobName="boston-lake-silver")
    result = build_on_glue(aws_settings, spark_glue, 2022)
    assert not result.success
    error = failure_of(result)
    assert "silver 2022: Glue refused to start boston-lake-silver: ConcurrentRunsExceededException" in error
    assert "Job with name boston-lake-silver already running" in error  # moto's wording of Glue's message
    assert spark_glue.runs == {}, "nothing ran"
    lake_keys = [o["Key"] for o in glue_lake.list_objects_v2(Bucket=aws_settings.aws.lake_bucket)["Contents"]]
    assert not [k for k in lake_keys if "/_staging/" in k or k.startswith(f"{PIPES_PREFIX}context/")]
