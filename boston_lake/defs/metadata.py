"""Metadata that more than one domain writes or reads: sizes, column schemas, and a check's failing years."""

from collections.abc import Mapping

from dagster import MetadataValue, TableColumn, TableSchema, TextMetadataValue

from boston_lake.lake.catalog.registration import TableSnapshot
from boston_lake.lake.tables import COLUMN_DESCRIPTIONS


def size_text(size: int) -> str:
    """Bytes as a person reads them (decimal units, as S3 and the OS file browsers show them)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def column_schema(snapshot: TableSnapshot) -> TableSchema:
    return TableSchema(
        columns=[
            TableColumn(name=name, type=glue_type, description=COLUMN_DESCRIPTIONS.get(name))
            for name, glue_type in snapshot.columns
        ]
        + [
            TableColumn(name=name, type=glue_type, description=COLUMN_DESCRIPTIONS.get(name, "partition key"))
            for name, glue_type in snapshot.partition_keys
        ]
    )


def failing_years_metadata(years: list[int]) -> MetadataValue:
    """The failing years as plain text: it shows on the check's result in the UI without opening JSON."""
    return MetadataValue.text(", ".join(map(str, years)) or "none")


def failing_years_of(metadata: Mapping[str, MetadataValue]) -> list[int]:
    """The years a check result's `failing_years_metadata` names (the sensors read them back)."""
    text = metadata.get("failing_years")
    if not isinstance(text, TextMetadataValue) or text.value == "none":
        return []
    return [int(year) for year in text.value.split(", ")]
