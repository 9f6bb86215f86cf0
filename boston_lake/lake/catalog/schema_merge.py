"""Merging the schemas of a table's files into one: new columns appended, types widened as Athena reads
them, and columns whose types cannot be read as one reported as conflicts, never coerced."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Types Athena reads as a wider one when partitions disagree (Athena's "compatible data types").
_WIDENING = (("tinyint", "smallint", "int", "bigint"), ("float", "double"))

Values = tuple[str, ...]
Column = tuple[str, str]


@dataclass(frozen=True)
class ColumnConflict:
    """One column with types that cannot be read as one: which partitions have which type."""

    column: str
    partitions_by_type: dict[str, list[Values]]
    table_type: str

    def describe(self) -> str:
        found = "; ".join(
            f"{glue_type} in {', '.join(partition_label(values) for values in partitions)}"
            for glue_type, partitions in self.partitions_by_type.items()
        )
        return f"column {self.column}: {found}; the table keeps {self.table_type}"


def merge_columns(
    sources: Sequence[tuple[Values, Iterable[Column]]], existing: list[Column]
) -> tuple[list[Column], list[ColumnConflict]]:
    """Union of the sources' columns: existing order first, then new ones as first seen; a column no source
    has any more is dropped."""
    order = [name for name, _ in existing]
    found: dict[str, dict[str, list[Values]]] = {}
    for values, columns in sources:
        for name, column_type in columns:
            if name not in order:
                order.append(name)
            holders = found.setdefault(name, {}).setdefault(column_type, [])
            if values not in holders:
                holders.append(values)
    existing_types = dict(existing)
    merged, conflicts = [], []
    for name in order:
        if name not in found:
            continue
        types = found[name]
        widest = _widest(list(types))
        if widest is None:
            widest = existing_types.get(name) or next(iter(types))
            conflicts.append(ColumnConflict(name, types, widest))
        merged.append((name, widest))
    return merged, conflicts


def _widest(types: list[str]) -> str | None:
    if len(types) == 1:
        return types[0]
    for ladder in _WIDENING:
        if all(column_type in ladder for column_type in types):
            return max(types, key=ladder.index)
    return None


def column_changes(old: list[Column], new: list[Column]) -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    old_types, new_types = dict(old), dict(new)
    added = [name for name in new_types if name not in old_types]
    removed = [name for name in old_types if name not in new_types]
    retyped = [
        (name, old_types[name], new_types[name])
        for name in new_types
        if name in old_types and old_types[name] != new_types[name]
    ]
    return added, removed, retyped


def partition_label(values: Values) -> str:
    return "/".join(values) if values else "(unpartitioned)"
