"""Metadata that more than one domain writes or reads: sizes, column schemas, a check's failing years, and the
years of a run that were stored or refused."""

from collections.abc import Iterable, Mapping
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    Failure,
    MetadataValue,
    TableColumn,
    TableSchema,
    TextMetadataValue,
)

from boston_lake.lake.catalog.registration import TableSnapshot
from boston_lake.lake.zones.dictionary import column_descriptions
from boston_lake.lake.zones.publish import PublishRefused

# On the observation of a year that failed in a run beside years with nothing to store (their list).
FAILED_BESIDE_ABSENT = "failed_beside_absent"


def size_text(size: int) -> str:
    """Bytes as a person reads them (decimal units, as S3 and the OS file browsers show them)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def column_schema(table: str, columns: Iterable[tuple[str, str]]) -> TableSchema:
    """(name, type) of `table`'s columns with their descriptions from the lake's data dictionary."""
    descriptions = column_descriptions(table)
    return TableSchema(
        columns=[TableColumn(name=name, type=type_, description=descriptions.get(name)) for name, type_ in columns]
    )


def catalog_column_schema(table: str, snapshot: TableSnapshot) -> TableSchema:
    """The columns of `table` as the catalog registers them, partition keys last."""
    return column_schema(table, snapshot.columns + snapshot.partition_keys)


def failing_years_metadata(years: list[int]) -> MetadataValue:
    """The failing years as plain text: it shows on the check's result in the UI without opening JSON."""
    return MetadataValue.text(", ".join(map(str, years)) or "none")


def failing_years_of(metadata: Mapping[str, MetadataValue]) -> list[int]:
    """The years a check result's `failing_years_metadata` names (the sensors read them back)."""
    text = metadata.get("failing_years")
    if not isinstance(text, TextMetadataValue) or text.value == "none":
        return []
    return [int(year) for year in text.value.split(", ")]


def refusal_metadata(refused: PublishRefused) -> dict[str, Any]:
    """What a refused version's failure shows in the UI: the table, year, check, both versions' figures, where the
    refused version is kept."""
    fields = refused.metadata()
    return {
        "table": MetadataValue.text(fields["table"]),
        "year": MetadataValue.int(fields["year"]),
        "check": MetadataValue.text(fields["check"]),
        "published": MetadataValue.json(fields["published"]),
        "staged": MetadataValue.json(fields["staged"]),
        "refused_uri": MetadataValue.path(fields["refused_uri"]),
        "failed_checks": MetadataValue.text(", ".join(fields["failed_checks"])),
    }


def observe_empty_years(context: AssetExecutionContext, asset_key: AssetKey, reasons: Mapping[int, str]) -> None:
    """Observe, not materialize, each year that holds no rows: its partition stays missing rather than filled with
    0 rows, and the observation (Events, with `rows: 0`) says why."""
    for year, reason in sorted(reasons.items()):
        line = f"{asset_key.to_user_string()} {year}: no rows, not materialized: {reason}"
        context.log.warning(line)
        context.log_event(
            AssetObservation(asset_key, partition=str(year), metadata={"rows": 0, "reason": reason}, description=line)
        )


def record_years(
    context: AssetExecutionContext,
    metadata_by_year: Mapping[int, Mapping[str, Any]],
    failures: Mapping[int, str | PublishRefused],
    absent: Iterable[int] = (),
    retried_alone: bool = False,
) -> bool:
    """Attach each stored year's metadata to its partition; if any year failed, fail the run naming them.
    Returns whether the asset's output stands for every year of the run; if not, the caller yields none.

    With `retried_alone`, a run where some year failed and another is absent does not fail: a failed run marks
    every year it did not store Failed, the absent ones too, and only a materialization clears that. Each failed
    year is observed with FAILED_BESIDE_ABSENT instead, for a sensor to request it again in a run of its own.

    A range run that fails materializes nothing in Dagster's eyes, and a returned output would materialize
    every year of the run, the `absent` ones too (years with nothing to store, which stay missing). So when
    some year failed or is absent, the years that were stored are logged as materializations of their own:
    the UI then shows them Materialized, the failed years Failed and the absent ones missing, and a backfill
    carries the stored years downstream. A run of one year that failed fails with that year's one line; a
    refused year's figures and the refused version's URI are in the failure's metadata.
    """
    if not failures and not set(absent):
        for year, metadata in metadata_by_year.items():
            context.add_asset_metadata(dict(metadata), partition_key=str(year))
        return True
    for year, metadata in metadata_by_year.items():
        context.log_event(AssetMaterialization(context.asset_key, partition=str(year), metadata=dict(metadata)))
    if not failures:
        return False
    if retried_alone and set(absent):
        nothing = ", ".join(map(str, sorted(set(absent))))
        for year, reason in sorted(failures.items()):
            line = (
                f"{context.asset_key.to_user_string()} {year} failed, requested again in a run of its own so that "
                f"{nothing}, with nothing to store, is not marked failed: {reason}"
            )
            context.log.error(line)
            metadata = {FAILED_BESIDE_ABSENT: MetadataValue.text(nothing), "reason": str(reason)}
            context.log_event(
                AssetObservation(context.asset_key, partition=str(year), metadata=metadata, description=line)
            )
        return False
    if len(failures) == 1 and not metadata_by_year:
        description = str(next(iter(failures.values())))
    else:
        description = (
            f"{context.asset_key.to_user_string()}: {len(failures)} of {len(failures) + len(metadata_by_year)} "
            f"years failed, {'the others are stored' if metadata_by_year else 'none is stored'}:\n"
            + "\n".join(f"  {year}: {reason}" for year, reason in sorted(failures.items()))
        )
    failed: dict[str, Any] = {"failed_years": sorted(failures), "stored_years": sorted(metadata_by_year)}
    refusals = [failure for _, failure in sorted(failures.items()) if isinstance(failure, PublishRefused)]
    if len(refusals) == 1:
        failed.update(refusal_metadata(refusals[0]))
    elif refusals:
        failed["refusals"] = MetadataValue.json([refused.metadata() for refused in refusals])
    raise Failure(description=description, metadata=failed)
