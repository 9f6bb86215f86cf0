"""The least a run that converts a year can hold at its peak, for bench_history.py's memory verdict.

One Dagster run in the shipped code location's process shape (the code location imported, as every run's process
imports it, and the same executor) whose one step converts one legacy CSV file to bronze Parquet with the
builds' DuckDB settings, or another thread count, and does nothing else: no download, no audit, no catalog, no
other year. An ingest run does all of that around the same conversion, so it peaks at least this high.
"""

import json
import os
import time
from pathlib import Path

from dagster import Definitions, OpExecutionContext, job, op

import boston_lake.definitions  # noqa: F401  (what the process of every run imports)
from boston_lake.defs.executor import EXECUTOR
from boston_lake.lake.tables import LEGACY_REQUESTS
from boston_lake.lake.zones.bronze import ConverterSettings, convert_csv


@op(config_schema={"csv": str, "out": str, "threads": int})
def convert_one_file(context: OpExecutionContext) -> None:
    """Convert `csv` into `out` with `threads` DuckDB threads (0: the builds' setting); the conversion's seconds go
    to the file BENCH_RESULT names, so that a thread count is judged by what it costs the conversion."""
    csv, out, threads = Path(context.op_config["csv"]), Path(context.op_config["out"]), context.op_config["threads"]
    settings = ConverterSettings(threads=threads) if threads else ConverterSettings()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    convert_csv(csv, out / "bronze.parquet", LEGACY_REQUESTS, settings=settings, work_dir=out)
    seconds = time.perf_counter() - started
    if "BENCH_RESULT" in os.environ:
        Path(os.environ["BENCH_RESULT"]).write_text(json.dumps({"seconds": seconds}))


@job(executor_def=EXECUTOR)
def convert_one_year() -> None:
    convert_one_file()


defs = Definitions(jobs=[convert_one_year])
