"""The facts bronze's checks judge: which ids repeat, over every chunk of the column, nulls aside."""

from __future__ import annotations

import pyarrow as pa

from boston_lake.lake.zones.bronze_quality import repeated_values


def test_repeated_values_are_found_across_chunks_ascending_without_nulls():
    ids = pa.chunked_array([[3, 1, None, 3], [2, 1, 1, None, 7]])
    assert repeated_values(ids).to_pylist() == [1, 3]


def test_text_ids_repeat_as_well_and_unique_ids_repeat_nothing():
    assert repeated_values(pa.chunked_array([["b", "a"], ["a", "c", "b"]])).to_pylist() == ["a", "b"]
    assert repeated_values(pa.chunked_array([[5, 4], [None, None]])).to_pylist() == []
    assert repeated_values(pa.chunked_array([], type=pa.string())).to_pylist() == []
