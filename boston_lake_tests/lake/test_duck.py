"""The one way the lake opens DuckDB: UTC, no extension fetched or loaded behind its back, the limits it is given."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from boston_lake.lake.duck import connect


def _setting(connection: duckdb.DuckDBPyConnection, name: str) -> object:
    return connection.execute(f"SELECT current_setting('{name}')").fetchone()[0]


def test_a_connection_runs_in_utc_and_never_installs_or_autoloads_an_extension():
    with connect(memory_limit=None) as connection:
        assert _setting(connection, "TimeZone") == "UTC"
        assert _setting(connection, "autoinstall_known_extensions") is False
        assert _setting(connection, "autoload_known_extensions") is False
        # A timestamp without an offset is UTC, whatever the machine's zone.
        [(epoch,)] = connection.execute("SELECT epoch(CAST('2024-01-01 10:00:00' AS TIMESTAMPTZ))").fetchall()
        assert epoch == 1704103200


def test_what_the_lake_uses_is_built_in_so_nothing_needs_loading():
    with connect(memory_limit=None) as connection:
        [(local,)] = connection.execute(
            "SELECT hour(timezone('America/New_York', TIMESTAMPTZ '2024-01-01 15:00:00+00'))"
        ).fetchall()
        assert local == 10  # ICU's time zones
        modes = dict(
            connection.execute(
                "SELECT extension_name, install_mode FROM duckdb_extensions() "
                "WHERE extension_name IN ('parquet', 'json', 'icu') AND loaded"
            ).fetchall()
        )
        assert modes == {name: "STATICALLY_LINKED" for name in ("parquet", "json", "icu")}


def test_the_limits_it_is_given(tmp_path: Path):
    with connect(
        memory_limit="192MiB", threads=1, temp_directory=tmp_path, preserve_insertion_order=False
    ) as connection:
        assert _setting(connection, "memory_limit") == "192.0 MiB"
        assert _setting(connection, "threads") == 1
        assert _setting(connection, "temp_directory") == str(tmp_path)
        assert _setting(connection, "preserve_insertion_order") is False


def test_no_memory_limit_keeps_duckdbs_own():
    with duckdb.connect() as plain, connect(memory_limit=None) as ours:
        assert _setting(ours, "memory_limit") == _setting(plain, "memory_limit")
        assert _setting(ours, "threads") == _setting(plain, "threads")
        assert _setting(ours, "preserve_insertion_order") is True


def test_a_bad_memory_limit_is_duckdbs_error():
    with pytest.raises(duckdb.Error, match="(?i)memory"):
        connect(memory_limit="lots")


def test_the_core_opens_duckdb_only_through_connect():
    core = Path(__file__).parents[2] / "boston_lake" / "lake"
    direct = sorted(
        str(path.relative_to(core))
        for path in core.rglob("*.py")
        if path.name != "duck.py" and "duckdb.connect(" in path.read_text(encoding="utf-8")
    )
    assert direct == [], "open DuckDB with boston_lake.lake.duck.connect (UTC, no extension autoload, the limits)"
