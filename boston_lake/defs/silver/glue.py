"""Dagster wiring of silver on the AWS target: one Glue job run per year, launched through dagster-aws's
`PipesGlueClient`. The pipes context and the job's messages travel under the lake bucket's `_pipes/`
(which `provision` expires); planning and publishing are the core's (lake/zones/silver/glue_build.py).

A run that fails, times out or is refused (the job's MaxConcurrentRuns) ends the Dagster run with Glue's own
message.
"""

import json
import random
import string
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError
from dagster import AssetExecutionContext
from dagster_aws.pipes import PipesGlueClient, PipesS3ContextInjector, PipesS3MessageReader
from dagster_pipes import PipesContextData, PipesParams

from boston_lake.lake.aws.session import describe_error
from boston_lake.lake.catalog.iceberg import IcebergTables
from boston_lake.lake.targets import GlueJobLauncher
from boston_lake.lake.zones.publish import DEFAULT_GUARD, ShrinkGuard
from boston_lake.lake.zones.silver import glue_build
from boston_lake.lake.zones.silver.duckdb_build import SilverError, SilverPartition


class PipesS3ContextInjectorUnder(PipesS3ContextInjector):
    """PipesS3ContextInjector under `_pipes/context/`, removing the context also when the run never started
    (the original leaves it behind when StartJobRun is refused)."""

    @contextmanager
    def inject_context(self, context: PipesContextData) -> Iterator[PipesParams]:
        key = f"{self.key_prefix or ''}{''.join(random.choices(string.ascii_letters, k=30))}/context.json"
        self.client.put_object(Body=json.dumps(context).encode("utf-8"), Bucket=self.bucket, Key=key)
        try:
            yield {"bucket": self.bucket, "key": key}
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=key)


class PipesS3MessageReaderUnder(PipesS3MessageReader):
    """PipesS3MessageReader writes under a random prefix at the bucket root; this one under `prefix`."""

    def __init__(self, *, prefix: str, **kwargs):
        super().__init__(**kwargs)
        self.prefix = prefix

    @contextmanager
    def get_params(self) -> Iterator[PipesParams]:
        with super().get_params() as params:
            yield {**params, "key_prefix": self.prefix + "".join(random.choices(string.ascii_letters, k=30))}


def build_on_glue(
    context: AssetExecutionContext,
    launcher: GlueJobLauncher,
    tables: IcebergTables,
    year: int,
    force: bool = False,
    shrink: ShrinkGuard = DEFAULT_GUARD,
    message_interval_seconds: float = 10,
) -> SilverPartition:
    """Build one silver year with the Glue job and commit it whole to the Iceberg table, through the core's partition
    protocol; unless
    `force`, a year already built from the same bronze objects by the same transform is left as it is, and no job
    runs. Raises PublishRefused when the staged year shrinks beyond the limit."""
    pipes = PipesGlueClient(
        client=launcher.glue,
        context_injector=PipesS3ContextInjectorUnder(
            bucket=launcher.job.lake_bucket, client=launcher.s3, key_prefix=f"{glue_build.PIPES_PREFIX}context/"
        ),
        message_reader=PipesS3MessageReaderUnder(
            prefix=f"{glue_build.PIPES_PREFIX}messages/",
            bucket=launcher.job.lake_bucket,
            client=launcher.s3,
            interval=message_interval_seconds,
        ),
    )

    def run_job(run: glue_build.GlueRun) -> dict[str, Any]:
        context.log.info(
            f"silver {year}: Glue job {launcher.job.name} with {launcher.job.script_location}, reading "
            f"{len(run.inputs.files)} bronze objects, staging at {tables.store.uri(run.staging_prefix)}"
        )
        try:
            invocation = pipes.run(
                context=context,
                start_job_run_params=launcher.job.start_params(),
                extras={glue_build.PLAN_EXTRA: run.plan},
            )
        except ClientError as error:  # StartJobRun refused: ConcurrentRunsExceededException, no such job ...
            raise SilverError(
                f"silver {year}: Glue refused to start {launcher.job.name}: {describe_error(error)}"
            ) from error
        except RuntimeError as error:  # the run ended FAILED, TIMEOUT, STOPPED or ERROR: Glue's status and message
            raise SilverError(f"silver {year}: {error}") from error
        return glue_build.job_report(list(invocation.get_custom_messages()), year)

    return glue_build.build(tables, year, context.log, run_job, context.run.run_id, force=force, shrink=shrink)
