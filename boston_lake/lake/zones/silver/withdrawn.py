"""Cases the source withdrew: a case the published silver year held that no bronze file read for the year lists
any more stays in silver, marked with when it was first found withdrawn (`withdrawn_at`), instead of silently
disappearing. A case that comes back in bronze is a live case again; one that moved to a neighbouring year is
still in bronze, so it is not withdrawn. Gold leaves withdrawn cases out.

It runs on the staged year of either engine, in this process, before the audits: the staged year plus the
withdrawn cases is the version that is audited and committed.
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from boston_lake.lake.clock import utc_now
from boston_lake.lake.duck import one_row, spilling_into, sql_identifier, sql_literal
from boston_lake.lake.tables import TABLES
from boston_lake.lake.zones.iceberg_year import IcebergYearBuild
from boston_lake.lake.zones.silver.inputs import SilverInputs

WITHDRAWN_AT = "withdrawn_at"


def keep_withdrawn(
    staged: Path,
    published: list[Path],
    bronze: list[tuple[str, Path]],
    withdrawn_at: datetime,
    destination: Path,
    memory_limit: str,
) -> int:
    """Write `destination`: the `staged` year and every case of the `published` year whose id no `bronze` file
    ((id column, path) of each input) lists, withdrawn at its earlier time or at `withdrawn_at`. Returns how many
    withdrawn cases it holds. With none (always on a first build), `destination` is a copy of `staged`: the year is
    not encoded twice. DuckDB spills beside `destination` (the year's workspace: a killed run's spill is swept with
    it)."""
    if not published:
        shutil.copyfile(staged, destination)
        return 0
    with spilling_into(destination.parent, prefix="boston_lake_withdrawn_", memory_limit=memory_limit) as connection:
        connection.execute(f"CREATE VIEW staged AS SELECT * FROM read_parquet({sql_literal(str(staged))})")
        columns = connection.execute("DESCRIBE staged").fetchall()
        ids = [
            f"SELECT CAST({sql_identifier(id_column)} AS VARCHAR) AS case_id FROM read_parquet({sql_literal(str(p))})"
            for id_column, p in bronze
        ]
        connection.execute(
            "CREATE VIEW bronze_ids AS "
            + (" UNION ALL ".join(ids) if ids else "SELECT CAST(NULL AS VARCHAR) AS case_id WHERE false")
        )
        files = ", ".join(sql_literal(str(path)) for path in published)
        connection.execute(f"CREATE VIEW published AS SELECT * FROM read_parquet([{files}], union_by_name = true)")
        had = {name for name, *_ in connection.execute("DESCRIBE published").fetchall()}
        projected = []
        for name, duck_type, *_ in columns:
            value = sql_identifier(name) if name in had else "NULL"
            if name == WITHDRAWN_AT:
                value = f"coalesce({value}, {sql_literal(withdrawn_at.isoformat())})"
            projected.append(f"CAST({value} AS {duck_type}) AS {sql_identifier(name)}")
        connection.execute(
            f"CREATE VIEW withdrawn AS SELECT {', '.join(projected)} FROM published "
            "WHERE case_id NOT IN (SELECT case_id FROM bronze_ids WHERE case_id IS NOT NULL) "
            "AND case_id NOT IN (SELECT case_id FROM staged WHERE case_id IS NOT NULL)"
        )
        (count,) = one_row(connection, "SELECT count(*) FROM withdrawn")
        if not count:
            shutil.copyfile(staged, destination)
            return 0
        connection.execute(
            f"COPY (SELECT * FROM staged UNION ALL SELECT * FROM withdrawn) TO {sql_literal(str(destination))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
    return int(count)


def with_withdrawn(
    build: IcebergYearBuild[Any], inputs: SilverInputs, staged: Path, destination: Path, memory_limit: str
) -> int:
    """`keep_withdrawn` for a year about to be committed: the published year is the table's current file of it,
    the bronze files are the year's inputs, read through the store."""
    id_columns = {table.name: table.generations[0].id_column for table in TABLES}
    published = build.published_file()
    with ExitStack() as stack:
        previous = [stack.enter_context(build.store.reading(published))] if published else []
        bronze = [(id_columns[file.table], stack.enter_context(build.store.reading(file.key))) for file in inputs.files]
        return keep_withdrawn(staged, previous, bronze, utc_now(), destination, memory_limit)
