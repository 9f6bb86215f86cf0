"""The lake from Python, for notebooks and scripts: `open_lake()` and SQL over every catalog table.

It is `boston-lake query` without the shell: the same settings choose the target (BOSTON_LAKE_TARGET, and
BOSTON_LAKE_HOME or `home` for the local one) and the same engine answers (DuckDB over the catalog locally, Athena
on AWS), so a query gives the same rows in both. Results are DuckDB relations over the answer, held in memory:
`.df()`, `.to_arrow_table()`, `.pl()`, `.fetchall()`, `.show()`, or more SQL on them; nothing can write to the lake.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

from boston_lake.lake.duck import connect
from boston_lake.lake.errors import LakeError
from boston_lake.lake.settings import Settings
from boston_lake.lake.targets import QueryEngine, build_target


class LakeOptionError(LakeError, TypeError):
    """`open_lake` was given an option its target's query engine does not take."""


class Lake:
    """An open lake: SQL over the catalog's tables, read-only. Close it (or use `with`) to free its engine."""

    def __init__(self, engine: QueryEngine):
        self._engine = engine
        # Where answers become relations: in memory, in UTC like the engines, apart from the lake.
        self._answers = connect(memory_limit=None)

    def __repr__(self) -> str:
        return f"Lake({self._engine!r})"

    def sql(self, sql: str) -> duckdb.DuckDBPyRelation:
        """The answer to `sql` (SELECT statements over `boston311.<table>`); raises QueryError naming the fault."""
        return self._answers.from_arrow(self._engine.query(sql))

    def close(self) -> None:
        self._engine.close()
        self._answers.close()

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def open_lake(
    home: str | Path | None = None, *, environ: Mapping[str, str] | None = None, **engine_options: Any
) -> Lake:
    """The lake the settings in `environ` (the process's environment by default) name, with `home` in place of
    BOSTON_LAKE_HOME. `engine_options` go to the target's query engine as they are."""
    settings = dict(os.environ if environ is None else environ)
    if home is not None:
        settings["BOSTON_LAKE_HOME"] = str(Path(home).resolve())
    target = build_target(Settings.from_env(settings))
    try:
        engine = target.query_engine(**engine_options)
    except TypeError as error:
        if not engine_options:  # not about an option: a fault of the engine itself
            raise
        raise LakeOptionError(
            f"open_lake: {target!r} cannot take the options {sorted(engine_options)}: {error}"
        ) from error
    return Lake(engine)
