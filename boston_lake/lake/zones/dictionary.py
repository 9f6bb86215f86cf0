"""The data dictionary: what each column of each lake table holds, in one place, so that every reader (the
Dagster UI's column schemas, `boston-lake catalog`, a catalog's column comments) says the same true thing.

A column name shared by two zones may mean different things there (bronze's `on_time` is the source's
ONTIME/OVERDUE text, silver's a boolean, gold's a count), so descriptions are looked up per table, never by
column name alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from boston_lake.lake.errors import LakeError
from boston_lake.lake.tables import COLUMN_DESCRIPTIONS, TABLES, LakeTable
from boston_lake.lake.zones.gold import GOLD_TABLES
from boston_lake.lake.zones.silver.model import COLUMNS, SILVER_TABLE


class UnknownTable(LakeError, KeyError):
    """A table the lake does not build, so it has no column descriptions."""


def _bronze(table: LakeTable) -> dict[str, str]:
    """Every column of every generation of `table`, and its partition key, as the source's data dictionary has it."""
    names = [name for generation in table.generations for name in generation.types] + ["year"]
    return {name: COLUMN_DESCRIPTIONS[name] for name in dict.fromkeys(names)}


DESCRIPTIONS: dict[str, dict[str, str]] = {
    **{table.name: _bronze(table) for table in TABLES},
    SILVER_TABLE: {column.name: column.description for column in COLUMNS},
    **{table.name: dict(table.columns) for table in GOLD_TABLES},
}


def column_descriptions(table: str) -> Mapping[str, str]:
    """Column name -> what it holds, for one table of the lake."""
    if table not in DESCRIPTIONS:
        raise UnknownTable(f"no column descriptions for table {table!r}; the lake has {', '.join(DESCRIPTIONS)}")
    return DESCRIPTIONS[table]
