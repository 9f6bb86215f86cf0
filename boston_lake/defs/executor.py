"""How the steps of every run of this code location execute: one after another, in the run's own process.

A run here is one table's chain (raw, bronze, its checks, catalog, its checks), each step waiting for the
one before, so Dagster's multiprocess default buys no parallelism; it only starts a Python per step that
imports Dagster, DuckDB and pyarrow again (about 2 s a step on 2 cores: benchmarks/bench_backfill.py).
Pools still hold: the in-process executor claims a step's pool slot as the multiprocess one does. What is
given up is step isolation: a crash of the process itself (not an exception) fails the whole run.
"""

from dagster import in_process_executor

EXECUTOR = in_process_executor
