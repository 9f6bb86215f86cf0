"""Where every object of the lake lives, as store keys that are the same locally and on S3.

A catalog table's location holds its data files only: the bookkeeping of its partitions (bronze's manifest and
rejects) lives under `_meta/`, keyed like the data, because clients such as awswrangler and `pyarrow.dataset`
read every object under a location. Names that begin with `_` or `.` are bookkeeping (manifests, history,
staging): Hive, Athena, Glue crawlers and our crawler all skip them. The raw zone is no catalog table: its
manifests stay beside the files they describe.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from boston_lake.lake.tables import DATABASE

MANIFEST = "_manifest.json"
REJECTS = "_rejects.csv"
HISTORY = "_history"
BRONZE_FILE = "part-00000.parquet"
META_PREFIX = "_meta/"  # the bookkeeping of catalog tables, outside every table's location
LOCKS_PREFIX = "_locks/"  # leases for work two processes must never do at once (a crawl, one partition's build)
WORK_LEASES_PREFIX = f"{LOCKS_PREFIX}work/"  # on S3, the claim of one partition of one zone (see work_lease_key)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_YEAR_FOLDER = re.compile(r"(?:^|/)year=(\d{4})(?:/|$)")


def raw_table_prefix(table: str) -> str:
    return f"raw/{DATABASE}/{table}/"


def raw_partition_prefix(table: str, year: int) -> str:
    return f"{raw_table_prefix(table)}year={year}/"


def raw_source_prefix(table: str) -> str:
    """The whole download of a source that is split into years (NEW SYSTEM), kept as it came."""
    return f"{raw_table_prefix(table)}_source/"


def raw_datastore_prefix(table: str) -> str:
    """The pages of the last DataStore fetch of a split source, each exactly as the portal sent it."""
    return f"{raw_source_prefix(table)}datastore/"


def raw_unassigned_prefix(table: str) -> str:
    """Rows of a split source whose open date names no partition: kept, counted, never dropped."""
    return f"{raw_table_prefix(table)}_unassigned/"


def bronze_table_prefix(table: str) -> str:
    return f"bronze/{DATABASE}/{table}/"


def bronze_partition_prefix(table: str, year: int) -> str:
    return f"{bronze_table_prefix(table)}year={year}/"


def bronze_data_key(table: str, year: int) -> str:
    return bronze_partition_prefix(table, year) + BRONZE_FILE


def meta_key(data_prefix: str, name: str) -> str:
    """The bookkeeping file `name` of the table or partition at `data_prefix`, in the `_meta/` tree."""
    return f"{META_PREFIX}{data_prefix}{name}"


def bronze_manifest_key(table: str, year: int) -> str:
    return meta_key(bronze_partition_prefix(table, year), MANIFEST)


def bronze_rejects_key(table: str, year: int) -> str:
    return meta_key(bronze_partition_prefix(table, year), REJECTS)


def bronze_bookkeeping_keys(table: str, year: int) -> tuple[str, str]:
    return bronze_manifest_key(table, year), bronze_rejects_key(table, year)


def before_meta(key: str) -> str:
    """Where a lake laid out before `_meta/` keeps the bookkeeping file `key`: beside the data, until a run of its
    partition moves it."""
    return key.removeprefix(META_PREFIX)


def table_prefix(zone: str, table: str) -> str:
    """A table's prefix in any zone that holds Parquet by year (`silver`, `gold`)."""
    return f"{zone}/{DATABASE}/{table}/"


def partition_prefix(zone: str, table: str, year: int) -> str:
    return f"{table_prefix(zone, table)}year={year}/"


def data_key(zone: str, table: str, year: int) -> str:
    """The one object a year of a derived table is published as, like bronze's."""
    return partition_prefix(zone, table, year) + BRONZE_FILE


def history_prefix(prefix: str, stamp: str, sha256: str) -> str:
    """Where a replaced version goes: named by when it was fetched and by its content, so two versions never
    share a folder even when a clock repeats a time, and the same content always lands in the same one."""
    return f"{prefix}{HISTORY}/{stamp}-{sha256[:12]}/"


def work_lease_key(name: str) -> str:
    """The lease that claims the unit of work `name` (e.g. `bronze.legacy_requests.2023`) across machines."""
    return f"{WORK_LEASES_PREFIX}{name}.json"


def safe_file_name(name: str, fallback: str) -> str:
    """A download's own file name, reduced to characters that are safe in any store key."""
    cleaned = _SAFE_NAME.sub("_", PurePosixPath(name).name).strip("._")
    return cleaned or fallback


def is_bookkeeping(key: str) -> bool:
    """True for any key with a path segment that starts with `_` or `.`."""
    return any(part.startswith(("_", ".")) for part in key.split("/") if part)


def year_of_key(key: str) -> int | None:
    match = _YEAR_FOLDER.search(key)
    return int(match.group(1)) if match else None


REFUSED_PREFIX = "_refused/"


def refused_prefix(zone: str, table: str, year: int) -> str:
    """Where a version of a partition that a blocking audit refused is kept for inspection: outside every table's
    prefix and bookkeeping (`_`), so no reader or crawler sees it; the partition's next attempt removes it."""
    return f"{REFUSED_PREFIX}{zone}/{table}/year={year}/"
