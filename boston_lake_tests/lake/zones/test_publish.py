"""The census the shrink guard compares: rows and distinct case ids of a version of a year."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from boston_lake.lake.zones.publish import Census, distinct_values


def test_a_census_counts_each_id_once_as_text_over_every_row_group_nulls_and_withdrawn_cases_aside(tmp_path: Path):
    path = tmp_path / "year.parquet"
    withdrawn = pa.array([None, None, 1, None, None, None, None, 1], pa.int64())
    rows = pa.table({"case_id": [30, 4, 9, None, 30, 4, 100, 30], "withdrawn_at": withdrawn})
    pq.write_table(rows, path, row_group_size=3)  # three chunks, an id repeated across them

    every = Census.of(pq.ParquetFile(path), "case_id")
    assert (every.rows, every.ids.to_pylist()) == (8, ["100", "30", "4", "9"])  # ascending as text
    listed = Census.of(pq.ParquetFile(path), "case_id", "withdrawn_at")
    assert (listed.rows, listed.ids.to_pylist()) == (6, ["100", "30", "4"])  # 9 is only withdrawn


def test_distinct_values_are_pyarrows_unique_values_sorted():
    ids = pa.chunked_array([["b", None, "a", "b"], [], ["c", "a", None], ["b"]])
    assert distinct_values(ids).to_pylist() == sorted(pc.unique(ids.drop_null()).to_pylist()) == ["a", "b", "c"]
    assert distinct_values(pa.chunked_array([[None, None]], pa.string())).to_pylist() == []
    assert distinct_values(pa.chunked_array([], pa.string())).to_pylist() == []
    assert distinct_values(pa.chunked_array([["only"]])).to_pylist() == ["only"]
