"""The whole history of Boston 311 in one backfill: each run a UI backfill of everything becomes, on a fresh lake
and Dagster home, against the floors measured in the same run.

The 16 legacy years are generated at the sizes the portal lists for them (2011 … 2026, 1.93 GB at `--scale 1`)
from the real sample rows (bench_bronze's generator: every open date within its year), and the NEW SYSTEM years
(2025, 2026) from its sample rows as one DataStore resource; the sample portal serves them all on 127.0.0.1,
the NEW SYSTEM records through `datastore_search`. Then, on a fresh lake and Dagster home:

- the backfill: the ingest job of each table over its years, the crawl of each, silver over every year, gold
  over every year, as a UI backfill of everything and the sensors run them, each run through the shipped code
  location (its executor and checks), its wall time and peak RSS measured whole;
- silver of one year, forced, and the daily refresh finding nothing new (both ingest runs again);
- a query of every silver year through the catalog (`boston-lake query`);
- the floors: the legacy files and the NEW SYSTEM records converted in one process (`convert_csv`), a plain
  DuckDB rewrite of every bronze year (no transform) and of the one year, one DuckDB aggregation pass over
  silver, DuckDB counting silver's files directly, and a do-nothing Dagster run of the refresh's steps
  (benchmarks/noop_definitions.py).

    python benchmarks/bench_history.py                 # the issue's sizes, 1.93 GB of legacy CSV
    python benchmarks/bench_history.py --scale 0.05    # 5 % of each size, for a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_backfill import (  # noqa: E402
    INSTANCE_CONFIG,
    BenchPortal,
    Results,
    _read_through,
    child_env,
    convert_files,
    in_turn,
    measured,
    noop_run,
    portal_data,
    range_tags,
)
from benchmarks.bench_bronze import (  # noqa: E402
    MB,
    RESULTS,
    RSS_TARGET_MIB,
    SHAPES,
    BenchError,
    Generated,
    generate_csv,
    machine_info,
)
from boston_lake.defs.keys import SILVER_JOB  # noqa: E402
from boston_lake.lake import layout  # noqa: E402
from boston_lake.lake.source.portal import DATASET  # noqa: E402
from boston_lake.lake.tables import DATABASE, LEGACY_REQUESTS, NEW_SYSTEM_REQUESTS, TABLES  # noqa: E402
from boston_lake.lake.zones.silver.model import SILVER_TABLE  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
# The sizes (MB) at which the portal lists the legacy files, 2011 … 2026.
LEGACY_MB = dict(
    zip(
        range(2011, 2027),
        (27.3, 56.5, 68.6, 69.5, 106.1, 113.0, 133.5, 139.1, 135.9, 133.8, 156.1, 158.0, 184.1, 182.1, 159.5, 102.2),
        strict=True,
    )
)
# The NEW SYSTEM DataStore from August 2025: a year of the new CRM is about the size of a legacy year.
NEW_SYSTEM_MB = {2025: 60.0, 2026: 150.0}
IDS_PER_YEAR = 1_000_000  # more than the rows of the largest year (about 370,000 at 184 MB)
MIN_BYTES = 20_000  # a year of a few dozen rows at the smallest scale
ONE_YEAR = 2023  # the year silver is rebuilt alone, against a plain rewrite of its bronze file
LARGEST_YEAR = max(LEGACY_MB, key=LEGACY_MB.__getitem__)  # the year whose conversion sets the ingest run's peak
GOLD_JOB = "build_gold"

END_TO_END_VS_FLOOR = 2.0
GOLD_VS_SILVER = 0.25
SILVER_YEAR_VS_REWRITE = 2.5
QUERY_VS_DIRECT = 1.5
REFRESH_VS_NOOP = 1.5

INGEST_LEGACY, INGEST_NEW, CRAWL_LEGACY, CRAWL_NEW, SILVER, GOLD = (
    "ingest legacy 2011-2026",
    "ingest NEW SYSTEM 2025-2026",
    "crawl legacy",
    "crawl NEW SYSTEM",
    "silver 2011-2026",
    "gold 2011-2026",
)
BACKFILL_RUNS = (INGEST_LEGACY, INGEST_NEW, CRAWL_LEGACY, CRAWL_NEW, SILVER, GOLD)
SILVER_ONE, REFRESH, NOOP, QUERY = (
    f"silver {ONE_YEAR} alone (forced)",
    "daily refresh, nothing new",
    "do-nothing Dagster run",
    "query of all silver years through the catalog (in one process, after imports; median of 5)",
)
FETCH, CONVERSION, REWRITE, REWRITE_ONE, AGGREGATION, DIRECT = (
    "fetch: the legacy files downloaded and the NEW SYSTEM records paged, in one process",
    "floor: pure conversion of the legacy files and the NEW SYSTEM records",
    "floor: plain DuckDB rewrite of every bronze year",
    f"floor: plain DuckDB rewrite of bronze {ONE_YEAR}",
    "floor: one DuckDB aggregation pass over silver",
    "DuckDB counting silver's files directly (in one process, after imports; median of 5)",
)
FLOORS = (CONVERSION, REWRITE, AGGREGATION)
# What any run that converts the largest year holds at its peak, whatever the lake's code around it does: a Dagster
# run of the code location whose one step converts that year with the builds' DuckDB settings (convert_definitions).
RSS_FLOOR = f"floor: a Dagster run whose one step converts bronze {LARGEST_YEAR}"
# The same with one DuckDB thread: less memory, the conversion's speed traded for it.
RSS_FLOOR_ONE_THREAD = f"{RSS_FLOOR}, one DuckDB thread"
# The catalog query and the direct count take tens of milliseconds: each is the median of this many, each on a
# connection of its own opened before its clock.
QUERY_REPEATS = 5
CONVERT_DEFINITIONS = BENCH_DIR / "convert_definitions.py"


# --- The input ---------------------------------------------------------------------------------------------


def generate_history(scale: float, work_dir: Path) -> tuple[dict[int, Generated], Path, int]:
    """The legacy years at their listed sizes times `scale`, and the NEW SYSTEM resource: its years' generated
    files as one CSV (one header), with its row count."""
    legacy = {year: _generate_year("legacy_v2", year, size, scale, work_dir) for year, size in LEGACY_MB.items()}
    parts = [_generate_year("new_system", year, size, scale, work_dir) for year, size in NEW_SYSTEM_MB.items()]
    combined = work_dir / f"new_system_history-{'-'.join(str(part.bytes) for part in parts)}.csv"
    if not combined.exists():
        with open(combined.with_suffix(".tmp"), "wb") as sink:
            for number, part in enumerate(parts):
                with open(part.path, "rb") as source:
                    if number:
                        source.readline()  # one header for the resource
                    shutil.copyfileobj(source, sink)
        combined.with_suffix(".tmp").rename(combined)
    return legacy, combined, sum(part.rows for part in parts)


def _generate_year(shape_name: str, year: int, size_mb: float, scale: float, work_dir: Path) -> Generated:
    """One year of a shape, its case ids a range of their own: silver checks them unique across years."""
    shape = SHAPES[shape_name]
    first_id = shape.first_id + (year - shape.table.first_year) * IDS_PER_YEAR
    year_shape = dataclasses.replace(shape, name=f"history_{shape_name}_{year}", year=year, first_id=first_id)
    return generate_csv(year_shape, max(int(size_mb * MB * scale), MIN_BYTES), work_dir)


# --- The runs ----------------------------------------------------------------------------------------------


def dagster_job(job: str, first: int, last: int, config: Path | None = None) -> list[str]:
    """A range run of a shipped job, as a single-run backfill launches it."""
    command = [sys.executable, "-m", "dagster", "job", "execute", "-m", "boston_lake.definitions", "-j", job]
    command += ["--tags", range_tags([first, last])]
    return [*command, "--config", str(config)] if config else command


def converting_run(csv: str, out: Path, threads: int | None) -> list[str]:
    """The Dagster run whose one step converts `csv` (benchmarks/convert_definitions.py); `threads` None: the
    builds' DuckDB setting."""
    out.mkdir(parents=True, exist_ok=True)
    config = out / f"convert-{threads or 'builds'}.json"
    step = {"csv": csv, "out": str(out), "threads": threads or 0}
    config.write_text(json.dumps({"ops": {"convert_one_file": {"config": step}}}))
    command = [sys.executable, "-m", "dagster", "job", "execute", "-f", str(CONVERT_DEFINITIONS)]
    return [*command, "-j", "convert_one_year", "--config", str(config)]


def table_years(table_first: int) -> tuple[int, int]:
    return table_first, max(LEGACY_MB)


def backfill_runs() -> dict[str, list[str]]:
    legacy, new = table_years(LEGACY_REQUESTS.first_year), table_years(NEW_SYSTEM_REQUESTS.first_year)
    return {
        INGEST_LEGACY: dagster_job(f"ingest_{LEGACY_REQUESTS.name}", *legacy),
        INGEST_NEW: dagster_job(f"ingest_{NEW_SYSTEM_REQUESTS.name}", *new),
        CRAWL_LEGACY: dagster_job(f"crawl_{LEGACY_REQUESTS.name}", *legacy),
        CRAWL_NEW: dagster_job(f"crawl_{NEW_SYSTEM_REQUESTS.name}", *new),
        SILVER: dagster_job(SILVER_JOB, *legacy),
        GOLD: dagster_job(GOLD_JOB, *legacy),
    }


def bronze_files(lake: Path, table: str) -> list[Path]:
    return sorted((lake / layout.bronze_table_prefix(table)).glob("year=*/*.parquet"))


def bronze_paths(lake: Path) -> list[str]:
    return [str(path) for table in TABLES for path in bronze_files(lake, table.name)]


def silver_files(lake: Path) -> list[str]:
    """The data files silver's Iceberg table reads now (a folder listing would also see replaced years' files)."""
    from boston_lake.lake.targets import LocalTarget

    tables = LocalTarget(lake).iceberg_reader()
    keys = tables.keys_by_year(SILVER_TABLE) if tables is not None else {}
    if not keys:
        raise BenchError(f"silver holds no year in {lake}")
    return [str(lake / key) for year in sorted(keys) for key in keys[year]]


def check_history(lake: Path, legacy: dict[int, Generated], new_system_rows: int) -> int:
    """Every generated row is in bronze, and silver holds every year; returns silver's rows."""
    import duckdb
    import pyarrow.parquet as pq

    for year, generated in legacy.items():
        path = lake / layout.bronze_data_key(LEGACY_REQUESTS.name, year)
        rows = pq.ParquetFile(path).metadata.num_rows if path.exists() else 0
        if rows != generated.rows:
            raise BenchError(f"bronze {year}: {path} holds {rows} rows, the generated CSV {generated.rows}")
    new_rows = sum(pq.ParquetFile(path).metadata.num_rows for path in bronze_files(lake, NEW_SYSTEM_REQUESTS.name))
    if new_rows != new_system_rows:
        raise BenchError(f"bronze NEW SYSTEM holds {new_rows} rows, the DataStore served {new_system_rows}")
    [(silver_rows,)] = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet({silver_files(lake)!r})").fetchall()
    return int(silver_rows)


def measure(
    legacy: dict[int, Generated],
    new_system: Path,
    new_system_rows: int,
    work_dir: Path,
    log: Callable[[str], None] = lambda message: None,
    profile_dir: Path | None = None,
) -> tuple[Results, dict[str, float]]:
    """Every run and floor, once. With `profile_dir`, each backfill run writes its cProfile there (its times are
    then the profiler's, not for judging)."""
    results = Results()
    loads = {}
    new_system_id = _new_system_resource_id()
    data = portal_data(legacy, work_dir / "portal", more={new_system_id: new_system})
    with BenchPortal(data, bytes_per_second=None) as portal:
        for path in [*(generated.path for generated in legacy.values()), new_system]:  # hashed once, cached
            portal.content_md5(path)
            _read_through(path)
        # The sample portal parses the resource's CSV for its first datastore_search (~5 s at full scale), a cost a
        # real DataStore does not have: paid here, not by the first run that pages it.
        portal.datastore_rows(data / portal.files_by_resource_id[new_system_id])
        with tempfile.TemporaryDirectory(prefix="bench_history_", dir=work_dir) as scratch_dir:
            scratch = Path(scratch_dir)
            lake, dagster_home = scratch / "lake", scratch / "dagster_home"
            dagster_home.mkdir()
            if INSTANCE_CONFIG.exists():
                shutil.copyfile(INSTANCE_CONFIG, dagster_home / "dagster.yaml")
            env = child_env(lake, dagster_home, portal.url)

            def run(name: str, argv: list[str]) -> None:
                loads[name] = os.getloadavg()[0]
                results.add(name, measured(argv, env, scratch, name), log)

            floor = [sys.executable, __file__, "--floor"]

            def floor_of(kind: str, *arguments: object) -> list[str]:
                return [*floor, json.dumps([kind, *arguments])]

            # Each floor runs right after the run it is the floor of, so that both meet the same load.
            legacy_paths = [str(legacy[year].path) for year in sorted(legacy)]
            beside: dict[str, Callable[[], list[tuple[str, list[str]]]]] = {
                INGEST_NEW: lambda: [
                    (FETCH, floor_of("fetch", portal.url, new_system_id, str(scratch / "fetched"))),
                    (CONVERSION, floor_of("convert", legacy_paths, str(new_system))),
                ],
                SILVER: lambda: [(REWRITE, floor_of("rewrite", bronze_paths(lake), str(scratch / "rewrite")))],
                GOLD: lambda: [(AGGREGATION, floor_of("aggregate", silver_files(lake)))],
            }
            for name, argv in backfill_runs().items():
                if profile_dir is not None:  # the run under cProfile: it runs its steps in its own process
                    argv = [argv[0], "-m", "cProfile", "-o", str(profile_dir / f"{_slug(name)}.prof"), *argv[1:]]
                run(name, in_turn([argv]))
                for floor_name, floor_argv in beside.get(name, lambda: [])():
                    run(floor_name, floor_argv)
            silver_rows = check_history(lake, legacy, new_system_rows)
            log(f"silver holds {silver_rows:,} rows")

            force = scratch / "force.yaml"
            force.write_text(json.dumps({"ops": {"silver__service_requests": {"config": {"force": True}}}}))
            run(SILVER_ONE, in_turn([dagster_job(SILVER_JOB, ONE_YEAR, ONE_YEAR, force)]))
            one = str(lake / layout.bronze_data_key(LEGACY_REQUESTS.name, ONE_YEAR))
            run(REWRITE_ONE, floor_of("rewrite", [one], str(scratch / "rewrite")))
            legacy_years, new_years = (
                table_years(LEGACY_REQUESTS.first_year),
                table_years(NEW_SYSTEM_REQUESTS.first_year),
            )
            refresh = [
                dagster_job(f"ingest_{LEGACY_REQUESTS.name}", *legacy_years),
                dagster_job(f"ingest_{NEW_SYSTEM_REQUESTS.name}", *new_years),
            ]
            run(REFRESH, in_turn(refresh))
            noop = noop_run(BENCH_DIR / "noop_definitions.py", list(range(legacy_years[0], legacy_years[1] + 1)))
            run(NOOP, in_turn([noop, noop]))  # one per table, as the refresh
            largest = str(legacy[LARGEST_YEAR].path)
            run(RSS_FLOOR, converting_run(largest, scratch / "rss", threads=None))
            run(RSS_FLOOR_ONE_THREAD, converting_run(largest, scratch / "rss", threads=1))
            run(QUERY, floor_of("catalog", str(lake)))
            run(DIRECT, floor_of("count", silver_files(lake)))
    return results, loads


def _slug(name: str) -> str:
    return "_".join(name.lower().replace("-", " ").split())


def profile_summary(profile_dir: Path, lines: int = 15) -> str:
    """Where each profiled run spent its time: its functions by cumulative time, the lake's and its libraries'."""
    import io
    import pstats

    out = io.StringIO()
    for path in sorted(profile_dir.glob("*.prof")):
        out.write(f"\n### {path.stem}\n\n")
        stats = pstats.Stats(str(path), stream=out)
        stats.sort_stats("cumulative").print_stats(r"boston_lake|duckdb|pyarrow|dagster/_core/execution/api", lines)
    return out.getvalue()


def _new_system_resource_id() -> str:
    from boston_lake.sample_portal.server import DATA_DIR

    config = json.loads((DATA_DIR / "portal.json").read_text())
    package = json.loads((DATA_DIR / config["package"]).read_text())["result"]
    for resource in package["resources"]:
        if NEW_SYSTEM_REQUESTS.resource_pattern.match(" ".join((resource.get("name") or "").split())):
            return str(resource["id"])
    raise BenchError("the bundled package offers no NEW SYSTEM resource")


# --- The floors, each in its own process -------------------------------------------------------------------


def floor(kind: str, *arguments: object) -> float:
    """One floor's work after its imports; returns its seconds."""
    if kind in ("rewrite", "aggregate"):
        return _sql_floor(kind, *arguments)
    if kind == "count":
        import duckdb

        count = f"SELECT count(*) FROM read_parquet({list(arguments[0])!r})"  # type: ignore[call-overload]
        return _median_seconds(duckdb.connect, lambda connection: connection.execute(count).fetchall())
    started = time.perf_counter()
    if kind == "fetch":
        portal_url, new_system_id, out = arguments
        fetch_everything(str(portal_url), str(new_system_id), Path(str(out)))
        seconds = time.perf_counter() - started
        shutil.rmtree(str(out))  # 2 GB of copies the bench has no use for
        return seconds
    if kind == "convert":  # both tables' files, as the two ingest runs convert them
        legacy_paths, new_system = arguments
        legacy_seconds = convert_files([Path(path) for path in legacy_paths])  # type: ignore[attr-defined]
        return legacy_seconds + convert_files([Path(str(new_system))], NEW_SYSTEM_REQUESTS)
    if kind == "catalog":
        from boston_lake.lake.targets import LocalTarget

        # The engine is opened before the clock, as the direct count's connection is: both then time what a query
        # costs (opening a DuckDB connection is ~15 ms either way); the catalog's plan is read inside the query.
        return _median_seconds(
            lambda: closing(LocalTarget(Path(str(arguments[0]))).query_engine()),
            lambda engine: engine.query(f"SELECT count(*) FROM {DATABASE}.{SILVER_TABLE}"),
        )
    raise BenchError(f"no floor named {kind!r}")


def _sql_floor(kind: str, *arguments: object) -> float:
    """A floor that is one plain DuckDB connection's SQL, the connection opened before the clock."""
    import duckdb

    with duckdb.connect() as connection:
        started = time.perf_counter()
        if kind == "rewrite":
            paths, out = arguments
            Path(str(out)).mkdir(parents=True, exist_ok=True)
            for number, path in enumerate(paths):  # type: ignore[arg-type]
                target = Path(str(out)) / f"{number}.parquet"
                connection.execute(
                    f"COPY (SELECT * FROM read_parquet('{path}')) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
                )
        else:  # "aggregate"
            connection.execute(
                f"SELECT year(opened_at) AS year, month(opened_at) AS month, source_system, neighborhood, "
                f"department, count(*) AS cases, median(date_diff('minute', opened_at, closed_at)) AS "
                f"minutes_to_close, avg(CAST(on_time AS INTEGER)) AS on_time_share "
                f"FROM read_parquet({list(arguments[0])!r}) GROUP BY ALL"  # type: ignore[call-overload]
            ).fetchall()
        return time.perf_counter() - started


def _median_seconds(opened: Callable[[], AbstractContextManager[Any]], query: Callable[[Any], object]) -> float:
    """The median of QUERY_REPEATS timings of `query`, each on a fresh engine or connection from `opened`, opened
    before its clock: the catalog query and the direct count take tens of milliseconds."""

    def once() -> float:
        with opened() as handle:
            started = time.perf_counter()
            query(handle)
            return time.perf_counter() - started

    return statistics.median(once() for _ in range(QUERY_REPEATS))


def fetch_everything(portal_url: str, new_system_id: str, out: Path) -> None:
    """What any backfill must fetch before converting, fetched plainly: every CSV file the package lists, streamed
    to disk, and every DataStore record of the NEW SYSTEM resource in pages of 10,000 as the lake asks for them,
    each page's bytes to disk. No check, no parsing beyond each page's `total`."""
    import requests

    out.mkdir(parents=True, exist_ok=True)
    with requests.Session() as session:
        package = session.get(f"{portal_url}/api/3/action/package_show", params={"id": DATASET})
        package.raise_for_status()
        for number, resource in enumerate(package.json()["result"]["resources"]):
            if resource.get("format") != "CSV" or not resource.get("url"):
                continue
            with session.get(resource["url"], stream=True) as download, open(out / f"{number}.csv", "wb") as sink:
                download.raise_for_status()
                for chunk in download.iter_content(chunk_size=1 << 20):
                    sink.write(chunk)
        offset, total = 0, None
        while total is None or offset < total:
            page = session.get(
                f"{portal_url}/api/3/action/datastore_search",
                params={"resource_id": new_system_id, "limit": 10_000, "offset": offset, "sort": "_id"},
            )
            page.raise_for_status()
            (out / f"page-{offset}.json").write_bytes(page.content)
            result = page.json()["result"]
            total, offset = result["total"], offset + len(result["records"])
            if not result["records"]:
                raise BenchError(f"the DataStore answered no record at offset {offset} of {total}")


# --- Reporting ---------------------------------------------------------------------------------------------


def verdicts(results: Results) -> list[str]:
    end_to_end = sum(results.seconds(name) for name in BACKFILL_RUNS)
    floor_seconds = sum(results.seconds(name) for name in FLOORS)
    # What a Dagster run costs doing nothing (the do-nothing measure is two runs): every run pays it before any
    # work, so it bounds each ratio from below whatever the lake's code does.
    empty_run = results.seconds(NOOP) / 2
    lines = [
        # The backfill also fetches everything it converts, which the floor (the issue's: conversion, rewrite,
        # aggregation) does not count: its bound adds the plain fetch.
        _verdict(
            "full history end to end / floor",
            end_to_end / floor_seconds,
            END_TO_END_VS_FLOOR,
            at_least=(len(BACKFILL_RUNS) * empty_run + results.seconds(FETCH) + floor_seconds) / floor_seconds,
            bound_counts="doing the floor's work and the fetch",
        )
        + f" ({end_to_end:.1f} s / {floor_seconds:.1f} s)",
        _verdict(
            "gold for all years / silver for all years",
            results.seconds(GOLD) / results.seconds(SILVER),
            GOLD_VS_SILVER,
            at_least=(empty_run + results.seconds(AGGREGATION)) / results.seconds(SILVER),
        ),
        _verdict(
            f"silver of {ONE_YEAR} / plain rewrite of that year",
            results.seconds(SILVER_ONE) / results.seconds(REWRITE_ONE),
            SILVER_YEAR_VS_REWRITE,
            at_least=(empty_run + results.seconds(REWRITE_ONE)) / results.seconds(REWRITE_ONE),
        ),
        _verdict(
            "query of all silver years through the catalog / DuckDB directly",
            results.seconds(QUERY) / results.seconds(DIRECT),
            QUERY_VS_DIRECT,
        ),
        _verdict(
            "daily refresh of unchanged years / do-nothing run",
            results.seconds(REFRESH) / results.seconds(NOOP),
            REFRESH_VS_NOOP,
        ),
    ]
    # The floors and the fetch are yardsticks measured beside the runs, not runs the target is about.
    runs = [name for name in results.runs if name != FETCH and not name.startswith("floor")]
    over = [name for name in runs if results.peak_mib(name) > RSS_TARGET_MIB]
    lines.append(
        f"peak RSS of every run <= {RSS_TARGET_MIB} MiB: "
        + ("MET" if not over else "MISSED by " + ", ".join(f"{name} ({results.peak_mib(name):.0f})" for name in over))
        + _rss_bound(results)
    )
    return lines


def _rss_bound(results: Results) -> str:
    """The least an ingest run can peak at, measured: a Dagster run of the code location whose one step converts
    the largest year (no download, no audit, no other year), with the builds' DuckDB settings and with one
    thread; out of reach when both exceed the target."""
    bound, one_thread = results.peak_mib(RSS_FLOOR), results.peak_mib(RSS_FLOOR_ONE_THREAD)
    slower = results.seconds(RSS_FLOOR_ONE_THREAD) / results.seconds(RSS_FLOOR)
    line = (
        # One decimal: a floor a fraction above the target must not read as equal to it.
        f"; a Dagster run whose one step converts bronze {LARGEST_YEAR} peaks at {bound:.1f} MiB, "
        f"{one_thread:.1f} MiB with one DuckDB thread ({slower:.2f}x the conversion's time)"
    )
    if min(bound, one_thread) > RSS_TARGET_MIB:
        line += " (out of reach for a run that converts that year in its own process)"
    elif bound > RSS_TARGET_MIB:
        line += " (within reach only at one DuckDB thread, trading the conversion's speed)"
    return line


def _verdict(
    name: str, ratio: float, target: float, at_least: float | None = None, bound_counts: str = "doing the floor's work"
) -> str:
    """The ratio against its target; with `at_least`, the ratio that a do-nothing Dagster run in place of the
    run (plus the work `bound_counts` names) would already reach, and whether that alone exceeds the target."""
    line = f"{name}: {ratio:.2f}x, target <= {target}x: {'MET' if ratio <= target else 'MISSED'}"
    if at_least is not None:
        line += f"; a do-nothing Dagster run {bound_counts} would be {at_least:.2f}x"
        if at_least > target:
            line += " (out of reach while each run is a Dagster run of its own)"
    return line


def report(
    results: Results, loads: dict[str, float], legacy: dict[int, Generated], new_system: Path, scale: float
) -> str:
    total = sum(generated.bytes for generated in legacy.values())
    lines = [
        f"16 legacy years at {scale:g}x the portal's sizes ({total / MB:,.0f} MB, "
        f"{sum(g.rows for g in legacy.values()):,} rows), "
        f"NEW SYSTEM DataStore of {new_system.stat().st_size / MB:,.0f} MB (2025-2026); one run each",
        "",
        "| run | seconds | peak RSS MiB | load average (1 min) at its start |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        # Milliseconds where a run takes less than a tenth of a second (the queries): their ratio is read from them.
        f"| {name} | {results.seconds(name):.{3 if results.seconds(name) < 0.1 else 2}f} | "
        f"{results.peak_mib(name):.0f} | {loads[name]:.2f} |"
        for name in results.runs
    ]
    lines += ["", *[f"- {line}" for line in verdicts(results)]]
    lines += ["", *[f"- {line}" for line in machine_info()]]
    return "\n".join(lines) + "\n"


def append_results(text: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with open(RESULTS, "a", encoding="utf-8") as stream:
        stream.write(f"\n## {stamp}: bench_history.py\n\n{text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="each year's size times this (1: the issue's)")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / ".work", help="generated CSVs and scratch")
    parser.add_argument("--markdown", action="store_true", help="append the results to benchmarks/results.md")
    parser.add_argument("--profile", type=Path, help="run the backfill under cProfile, profiles into this folder")
    parser.add_argument("--floor", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor:
        kind, *arguments = json.loads(args.floor)
        Path(os.environ["BENCH_RESULT"]).write_text(json.dumps({"seconds": floor(kind, *arguments)}))
        return 0
    if not 0 < args.scale <= 1:
        parser.error("--scale must be in (0, 1]")
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        log(f"generating or reusing the history at {args.scale:g}x in {args.work_dir}")
        legacy, new_system, new_system_rows = generate_history(args.scale, args.work_dir)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        results, loads = measure(legacy, new_system, new_system_rows, args.work_dir, log, args.profile)
    except BenchError as error:
        print(f"bench_history: {error}", file=sys.stderr)
        return 1
    if args.profile:
        print(profile_summary(args.profile))
        return 0
    text = report(results, loads, legacy, new_system, args.scale)
    print(text)
    if args.markdown:
        append_results(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
