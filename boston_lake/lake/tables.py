"""The lake's tables and the schema generations of the files that feed them.

Bronze keeps each file's own column names and types them explicitly: nothing is inferred, so a ZIP code
keeps its leading zero and a file whose header changes fails loudly instead of drifting silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from boston_lake.lake.errors import LakeError

# DuckDB type names, the language of the converter; Arrow types are derived for schemas and checks.
ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
}

DATABASE = "boston311"


class HeaderMismatch(LakeError, ValueError):
    """A CSV header matches no known schema generation."""


@dataclass(frozen=True)
class SchemaGeneration:
    """One published shape of a source file: its columns (any order), their types, the optional ones."""

    name: str
    columns: tuple[tuple[str, str], ...]
    optional: tuple[tuple[str, str], ...] = ()
    id_column: str = ""
    opened_column: str = ""

    @property
    def types(self) -> dict[str, str]:
        return dict(self.columns + self.optional)

    @property
    def required_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.columns)

    def mismatch(self, header: list[str]) -> tuple[list[str], list[str]]:
        """(unexpected, missing) columns of `header` against this generation."""
        known = self.types
        unexpected = [name for name in header if name not in known]
        missing = [name for name, _ in self.columns if name not in header]
        return unexpected, missing

    def arrow_schema(self, header: list[str]) -> pa.Schema:
        types = self.types
        return pa.schema([(name, ARROW_TYPES[types[name]]) for name in header])


@dataclass(frozen=True)
class LakeTable:
    """A catalog table; `split_by_year` marks one growing source file that is split into yearly partitions."""

    name: str
    title: str
    first_year: int
    resource_pattern: re.Pattern[str]
    generations: tuple[SchemaGeneration, ...]
    split_by_year: bool

    def match_generation(self, header: list[str]) -> SchemaGeneration:
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise HeaderMismatch(f"duplicate columns {duplicates}")
        for generation in self.generations:
            unexpected, missing = generation.mismatch(header)
            if not unexpected and not missing:
                return generation
        closest = min(self.generations, key=lambda g: sum(map(len, g.mismatch(header))))
        unexpected, missing = closest.mismatch(header)
        raise HeaderMismatch(
            f"header matches no known schema generation of {self.name} "
            f"({', '.join(g.name for g in self.generations)}); closest is {closest.name}: "
            f"unexpected columns {unexpected}, missing columns {missing}"
        )


def _text(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, "VARCHAR") for name in names)


# The text columns both legacy generations share, in their order (the on-time flag and photo columns differ in name).
_LEGACY_CASE_TEXT = ("case_status", "closure_reason", "case_title", "subject", "reason", "type", "queue", "department")
_COORDINATES = (("latitude", "DOUBLE"), ("longitude", "DOUBLE"))
_LEGACY_LOCATION = _text(
    "location",
    "fire_district",
    "pwd_district",
    "city_council_district",
    "police_district",
    "neighborhood",
    "neighborhood_services_district",
    "ward",
    "precinct",
    "location_street_name",
    "location_zipcode",
)
_DATASTORE_ROW_ID = (("_id", "BIGINT"),)  # added by CKAN's datastore dump API

LEGACY_V1 = SchemaGeneration(
    name="legacy_v1",
    columns=(
        ("case_enquiry_id", "BIGINT"),
        ("open_dt", "TIMESTAMP"),
        ("target_dt", "TIMESTAMP"),
        ("closed_dt", "TIMESTAMP"),
        *_text("ontime", *_LEGACY_CASE_TEXT, "submittedphoto", "closedphoto"),
        *_LEGACY_LOCATION,
        *_COORDINATES,
        *_text("source"),
    ),
    optional=_DATASTORE_ROW_ID,
    id_column="case_enquiry_id",
    opened_column="open_dt",
)

LEGACY_V2 = SchemaGeneration(
    name="legacy_v2",
    columns=(
        ("case_enquiry_id", "BIGINT"),
        ("open_dt", "TIMESTAMP"),
        ("sla_target_dt", "TIMESTAMP"),
        ("closed_dt", "TIMESTAMP"),
        *_text("on_time", *_LEGACY_CASE_TEXT, "submitted_photo", "closed_photo"),
        *_LEGACY_LOCATION,
        *_COORDINATES,
        *_text("geom_4326", "source"),
    ),
    optional=_DATASTORE_ROW_ID,
    id_column="case_enquiry_id",
    opened_column="open_dt",
)

NEW_SYSTEM = SchemaGeneration(
    name="new_system",
    columns=(
        ("case_id", "VARCHAR"),
        ("open_date", "TIMESTAMPTZ"),
        ("close_date", "TIMESTAMPTZ"),
        ("target_close_date", "TIMESTAMPTZ"),
        *_text(
            "case_topic",
            "service_name",
            "assigned_department",
            "assigned_team",
            "case_status",
            "closure_reason",
            "closure_comments",
            "on_time",
            "report_source",
            "full_address",
            "street_number",
            "street_name",
            "zip_code",
            "neighborhood",
            "public_works_district",
            "city_council_district",
            "fire_district",
            "police_district",
            "ward",
            "precinct",
        ),
        ("longitude", "DOUBLE"),
        ("latitude", "DOUBLE"),
    ),
    # The datastore API extract omits the photo columns that the full export has.
    optional=_DATASTORE_ROW_ID + _text("submitted_photo", "closed_photo"),
    id_column="case_id",
    opened_column="open_date",
)

LEGACY_REQUESTS = LakeTable(
    name="legacy_requests",
    title="311 service requests from the legacy CRM, one CKAN resource per year",
    first_year=2011,
    resource_pattern=re.compile(r"^311 service requests - (?P<year>\d{4})$", re.IGNORECASE),
    generations=(LEGACY_V1, LEGACY_V2),
    split_by_year=False,
)

NEW_SYSTEM_REQUESTS = LakeTable(
    name="new_system_requests",
    title="311 service requests from the new CRM (from August 2025), one growing CKAN resource",
    first_year=2025,
    resource_pattern=re.compile(r"^311 service requests - new system$", re.IGNORECASE),
    generations=(NEW_SYSTEM,),
    split_by_year=True,
)

TABLES = (LEGACY_REQUESTS, NEW_SYSTEM_REQUESTS)
TABLES_BY_NAME = {table.name: table for table in TABLES}
# The one conformed table silver builds from TABLES (zones/silver/model.py), named here so that settings can name
# every table that holds cases.
SERVICE_REQUESTS = "service_requests"

# The data dictionary: what each source column holds, shown beside the column schemas in the Dagster UI.
# One entry per column name; a name shared by several generations means the same thing in each.
COLUMN_DESCRIPTIONS = {
    "_id": "row number added by CKAN's datastore dump API, not part of the city's export",
    "case_enquiry_id": "case id of the legacy CRM (unique within a year's file)",
    "open_dt": "when the case was opened; local Boston wall time (v2 files: converted as if it were UTC)",
    "target_dt": "service-level target date (legacy v1 name)",
    "sla_target_dt": "service-level target date (legacy v2 name of target_dt)",
    "closed_dt": "when the case was closed; empty while open",
    "ontime": "ONTIME or OVERDUE against the target (legacy v1 name)",
    "on_time": "ONTIME or OVERDUE against the target",
    "case_status": "Open or Closed; NEW SYSTEM also In progress, Create, Submit, Error, Needs Reallocation",
    "closure_reason": "free text written on closing, e.g. 'Case Closed. Closed date : …' and a resolution",
    "closure_comments": "free text comments on closing (NEW SYSTEM)",
    "case_title": "short title of the request as entered",
    "subject": "department responsible for the request type",
    "reason": "category of the request",
    "type": "request type within the category",
    "queue": "work queue the case was assigned to",
    "department": "department code of the queue",
    "submittedphoto": "URL of a photo submitted with the request (legacy v1 name)",
    "closedphoto": "URL of a photo taken on closing (legacy v1 name)",
    "submitted_photo": "URL of a photo submitted with the request",
    "closed_photo": "URL of a photo taken on closing",
    "location": "address or intersection as entered",
    "fire_district": "fire district code",
    "pwd_district": "public works district code",
    "public_works_district": "public works district code (NEW SYSTEM name of pwd_district)",
    "city_council_district": "city council district number",
    "police_district": "police district code, e.g. B2",
    "neighborhood": "neighborhood name",
    "neighborhood_services_district": "neighborhood services district number",
    "ward": "city ward, written as 'Ward 3', '3' or '03' depending on the file",
    "precinct": "ward precinct code, e.g. 0306",
    "location_street_name": "street name of the location",
    "location_zipcode": "ZIP code as text, leading zero kept",
    "latitude": "WGS84 latitude",
    "longitude": "WGS84 longitude",
    "geom_4326": "the point as hex-encoded EWKB with SRID 4326 (legacy v2)",
    "source": "channel the request came in by, e.g. Constituent Call",
    "case_id": "case id of the new CRM, e.g. BCS-00065327",
    "open_date": "when the case was opened; labelled +00 (UTC) in the source",
    "close_date": "when the case was closed; empty while open",
    "target_close_date": "service-level target date",
    "case_topic": "category of the request (new CRM)",
    "service_name": "request type (new CRM)",
    "assigned_department": "department the case is assigned to",
    "assigned_team": "team the case is assigned to",
    "report_source": "channel the request came in by, e.g. Call, BOS311",
    "full_address": "address of the request",
    "street_number": "street number of the address",
    "street_name": "street name of the address",
    "zip_code": "ZIP code as text, leading zero kept",
    "year": "partition key: calendar year of the open date (Boston time), as text",
}
