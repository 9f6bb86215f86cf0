"""The floor of a Dagster run shaped like the daily refresh of this lake, for bench_backfill.py to measure against.

Two year-partitioned assets in a chain with single-run backfill policies and a multi-asset check: the same
three steps as raw, bronze and its checks (the ingest job), the same executor as the shipped code location,
and not one byte of work. Whatever a real run costs beyond this one is the lake's own.
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    Definitions,
    MaterializeResult,
    asset,
    multi_asset_check,
)

from boston_lake.defs.executor import EXECUTOR
from boston_lake.defs.partitions import partitions_for
from boston_lake.lake.tables import LEGACY_REQUESTS

PARTITIONS = partitions_for(LEGACY_REQUESTS)


def _noop_asset(name: str, upstream: str | None):
    @asset(
        key=["noop", name],
        deps=[AssetKey(["noop", upstream])] if upstream else [],
        partitions_def=PARTITIONS,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def noop(context: AssetExecutionContext) -> MaterializeResult:
        return MaterializeResult()

    return noop


def _noop_checks(name: str, checks: int):
    specs = [AssetCheckSpec(f"check_{number}", asset=AssetKey(["noop", name])) for number in range(checks)]

    @multi_asset_check(specs=specs, name=f"noop_{name}_checks")
    def noop_checks() -> Iterator[AssetCheckResult]:
        for spec in specs:
            yield AssetCheckResult(asset_key=spec.asset_key, check_name=spec.name, passed=True)

    return noop_checks


defs = Definitions(
    assets=[_noop_asset("raw", None), _noop_asset("bronze", "raw")],
    asset_checks=[_noop_checks("bronze", 5)],
    executor=EXECUTOR,
)
