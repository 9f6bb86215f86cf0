"""The silver model: its columns, the SQL text that builds it, and the inputs that text reads.

The column list is the contract that readers (gold assets, the mapping table in docs/silver.md, the column schema
in Dagster) rely on; a test holds both engines' output to it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import pyarrow as pa

from boston_lake.lake.tables import LEGACY_V1, LEGACY_V2, NEW_SYSTEM, SERVICE_REQUESTS, SchemaGeneration

SILVER_ZONE = "silver"
SILVER_TABLE = SERVICE_REQUESTS
TIMEZONE = "America/New_York"
UTC_INSTANT = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class SilverColumn:
    name: str
    type: pa.DataType
    description: str


COLUMNS = (
    SilverColumn("case_id", pa.string(), "Case id: legacy ids as their decimal digits, NEW SYSTEM ids as given"),
    SilverColumn("source_system", pa.string(), "legacy | new_system: the CRM that recorded the case"),
    SilverColumn("source_generation", pa.string(), "v1 | v2 | new_system: the schema generation of the winning copy"),
    SilverColumn("source_year", pa.int32(), "The bronze year (file) the winning copy came from"),
    SilverColumn("opened_at", UTC_INSTANT, "When the case was opened, a true UTC instant"),
    SilverColumn("closed_at", UTC_INSTANT, "When the case was closed (UTC); null while open"),
    SilverColumn("sla_due_at", UTC_INSTANT, "The service-level target (UTC); null where the source sets none"),
    SilverColumn("case_status", pa.string(), "Status as the source gives it (Open, Closed, In progress, ...)"),
    SilverColumn("on_time", pa.bool_(), "ONTIME -> true, OVERDUE -> false, anything else null"),
    SilverColumn("case_title", pa.string(), "Legacy case title (NEW SYSTEM has none)"),
    SilverColumn("subject", pa.string(), "Legacy subject: the intake or owning organisation (NEW SYSTEM has none)"),
    SilverColumn("case_category", pa.string(), "Legacy reason / NEW SYSTEM case topic"),
    SilverColumn("case_type", pa.string(), "Legacy type / NEW SYSTEM service name"),
    SilverColumn(
        "department", pa.string(), "Legacy department code (PWDx, BTDT, ...) / NEW SYSTEM assigned department"
    ),
    SilverColumn("queue", pa.string(), "Legacy queue / NEW SYSTEM assigned team"),
    SilverColumn("channel", pa.string(), "How the case came in: legacy source / NEW SYSTEM report source"),
    SilverColumn("closure_reason", pa.string(), "Closure reason as the source gives it"),
    SilverColumn("closure_comments", pa.string(), "NEW SYSTEM closure comments (legacy has none)"),
    SilverColumn("address", pa.string(), "Legacy location / NEW SYSTEM full address"),
    SilverColumn("street_name", pa.string(), "Street name"),
    SilverColumn("neighborhood", pa.string(), "Neighborhood"),
    SilverColumn(
        "zipcode", pa.string(), "5-character ZIP code (2115.0 and 02115-1234 become 02115); null if unreadable"
    ),
    SilverColumn("ward", pa.int32(), "Ward number (Ward 3, 3 and 03 are 3)"),
    SilverColumn("precinct", pa.string(), "Ward and precinct as 4 digits (0301)"),
    SilverColumn("police_district", pa.string(), "Police district"),
    SilverColumn("fire_district", pa.string(), "Fire district"),
    SilverColumn("public_works_district", pa.string(), "Public works district"),
    SilverColumn("city_council_district", pa.string(), "City council district"),
    SilverColumn("latitude", pa.float64(), "Latitude; null where the source puts a placeholder location"),
    SilverColumn("longitude", pa.float64(), "Longitude; null where the source puts a placeholder location"),
    SilverColumn(
        "withdrawn_at",
        UTC_INSTANT,
        "When the case was first found in no bronze file any more (the source withdrew it); null while the source "
        "lists it. Gold leaves withdrawn cases out",
    ),
    SilverColumn("year", pa.int32(), "Year of the open time in Boston local time: the table is partitioned by it"),
)
DESCRIPTION = (
    "Every 311 case once, legacy and NEW SYSTEM in one model, times as true UTC instants; a case belongs to the "
    "year of its open time in Boston."
)
SCHEMA = pa.schema([(column.name, column.type) for column in COLUMNS])

# The views the SQL text reads, each the bronze files of one schema generation with their year added.
INPUT_VIEWS = {"legacy_v1": LEGACY_V1, "legacy_v2": LEGACY_V2, "new_system": NEW_SYSTEM}
VIEW_OF_GENERATION = {generation.name: view for view, generation in INPUT_VIEWS.items()}
SOURCE_YEAR = "source_year"
SOURCE_ROW = "source_row"  # a row's position in its file: with the generation and year it identifies a copy
PARTITION_YEAR = "${partition_year}"
# Views that later statements read more than once (the rows written and the ledger): each runner computes them
# once. Both are small: a case id and two counts per case of the year, and the copies of cases read twice.
COMPUTED_ONCE = ("silver_decided", "silver_repeated_ranked")


def _package_text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


TRANSFORM_SQL = _package_text("service_requests.sql")
DUCKDB_MACROS_SQL = _package_text("duckdb_macros.sql")
# Changes whenever the transform could produce different rows, so that unchanged inputs can skip a rebuild.
TRANSFORM_VERSION = hashlib.sha256((TRANSFORM_SQL + DUCKDB_MACROS_SQL).encode()).hexdigest()[:16]


def statements(sql: str) -> list[str]:
    """The statements of a SQL text, split at semicolons that end a line (comments dropped)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    found, current = [], []
    for line in lines:
        current.append(line)
        if line.rstrip().endswith(";"):
            found.append("\n".join(current).strip().rstrip(";"))
            current = []
    if "".join(current).strip():
        raise ValueError(f"SQL text ends without a semicolon after: {' '.join(current).strip()[:80]}")
    return found


def transform_statements(year: int) -> list[str]:
    """The transform's statements for one partition year, the year put in as a literal both engines fold."""
    return statements(TRANSFORM_SQL.replace(PARTITION_YEAR, str(int(year))))


def input_columns(generation: SchemaGeneration) -> list[tuple[str, str]]:
    """(name, DuckDB type) of an input view: the generation's required columns, then the file's year and the
    row's position in the file.

    Optional columns (CKAN's `_id`, photo links) vary between files of one generation and the model uses none.
    """
    return [*generation.columns, (SOURCE_YEAR, "INTEGER"), (SOURCE_ROW, "BIGINT")]


# Spark's names for the bronze types: naive timestamps are Spark's TIMESTAMP_NTZ, instants its TIMESTAMP.
SPARK_TYPES = {
    "BIGINT": "BIGINT",
    "DOUBLE": "DOUBLE",
    "VARCHAR": "STRING",
    "TIMESTAMP": "TIMESTAMP_NTZ",
    "TIMESTAMPTZ": "TIMESTAMP",
    "INTEGER": "INT",
}


def spark_ddl(generation: SchemaGeneration) -> str:
    """The input view's schema in Spark DDL, for a generation that has no file among the inputs."""
    return ", ".join(f"`{name}` {SPARK_TYPES[duck_type]}" for name, duck_type in input_columns(generation))
