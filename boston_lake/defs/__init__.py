"""Dagster wiring only: partitions, assets, checks, jobs, sensors, schedules and the resources of the target.

The features used here on purpose (backfill policies; raw and bronze with different ones, see
`ingest.BRONZE_BACKFILL_POLICY`) make Dagster warn on every load of the code location. The warnings say
nothing an operator can act on, so they are silenced here, before any definition is built, and nothing else is.
"""

import warnings

from dagster import BetaWarning

warnings.filterwarnings("ignore", category=BetaWarning, message=r"Parameter `backfill_policy`")
warnings.filterwarnings(
    "ignore", category=UserWarning, message=r"Asset job ingest_\w+ materializes assets with varying"
)
