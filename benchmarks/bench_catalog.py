"""Benchmark of the crawler and the DuckDB query engine on bronze-shaped data; prints a markdown table.

The lake is 17 yearly partitions of three 100,000-row Parquet files each, made by tiling the real
bundled samples (legacy v1 for the first years, v2 after), so the crawl merges two schema generations.
Each figure is the median of several runs, next to a baseline measured in the same run:
- crawl vs. reading every file whole with pyarrow (what a crawler that looks at the data would cost);
- a one-year count by neighborhood vs. pandas read_parquet + groupby on the same files, and vs. DuckDB
  reading those files directly (the cost of going through the catalog).

Run: python benchmarks/bench_catalog.py
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boston_lake.lake import layout  # noqa: E402
from boston_lake.lake.catalog.crawler import Crawler  # noqa: E402
from boston_lake.lake.catalog.local import LocalCatalog  # noqa: E402
from boston_lake.lake.query.engine import DuckDBQueryEngine  # noqa: E402
from boston_lake.lake.stores import LocalObjectStore  # noqa: E402
from boston_lake.lake.tables import DATABASE, LEGACY_REQUESTS  # noqa: E402
from boston_lake.lake.zones.bronze import convert_csv  # noqa: E402
from boston_lake.sample_portal.server import DATA_DIR  # noqa: E402

YEARS = range(2010, 2027)  # 17 partitions
V1_YEARS = range(2010, 2013)
FILES_PER_YEAR = 3
ROWS_PER_FILE = 100_000
QUERY_YEAR = 2020
RUNS = 5
CRAWL_TARGET_SECONDS = 1.0
QUERY_TARGET_SECONDS = 0.2


def tiled_file(sample_csv: str, work: Path, name: str) -> Path:
    """A ROWS_PER_FILE-row bronze file made of the real sample's rows, repeated."""
    sample = work / f"{name}_sample.parquet"
    convert_csv(DATA_DIR / sample_csv, sample, LEGACY_REQUESTS)
    rows = pq.read_table(sample)
    repeats = -(-ROWS_PER_FILE // rows.num_rows)
    tiled = pa.concat_tables([rows] * repeats).slice(0, ROWS_PER_FILE)
    path = work / f"{name}.parquet"
    pq.write_table(tiled, path, compression="zstd", row_group_size=122_880)
    return path


def build_lake(home: Path) -> LocalObjectStore:
    store = LocalObjectStore(home / "lake")
    v1 = tiled_file("legacy_v1_2022-01_qsv_boston311-100.csv", home, "v1")
    v2 = tiled_file("legacy_v2_2013_bu-spark_filtered_every4th.csv", home, "v2")
    for year in YEARS:
        folder = store.path(layout.bronze_partition_prefix(LEGACY_REQUESTS.name, year))
        folder.mkdir(parents=True)
        for number in range(FILES_PER_YEAR):
            shutil.copyfile(v1 if year in V1_YEARS else v2, folder / f"part-{number:05d}.parquet")
    return store


def median_seconds(action: Callable[[], object], setup: Callable[[], object] = lambda: None) -> float:
    timings = []
    for _ in range(RUNS):
        setup()
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_catalog_") as work:
        home = Path(work)
        store = build_lake(home)
        prefix = layout.bronze_table_prefix(LEGACY_REQUESTS.name)
        target = [(LEGACY_REQUESTS.name, prefix)]
        data_files = sorted(path for path in store.path(prefix).rglob("*.parquet"))
        year_files = sorted(
            store.path(layout.bronze_partition_prefix(LEGACY_REQUESTS.name, QUERY_YEAR)).glob("*.parquet")
        )
        crawlers: list[Crawler] = []

        def fresh_crawler() -> None:
            """Each first crawl gets an empty catalog of its own."""
            catalog = LocalCatalog(home / f"catalog{len(crawlers)}" / "catalog.sqlite")
            crawlers.append(Crawler(store, catalog, DATABASE))

        first_crawl = median_seconds(lambda: crawlers[-1].crawl(target), setup=fresh_crawler)
        crawler = crawlers[-1]
        recrawl = median_seconds(lambda: crawler.crawl(target))
        read_everything = median_seconds(lambda: [pq.read_table(path) for path in data_files])

        engine = DuckDBQueryEngine(crawler.catalog, store)
        sql = (
            f"SELECT neighborhood, count(*) AS requests FROM {DATABASE}.{LEGACY_REQUESTS.name} "
            f"WHERE year = '{QUERY_YEAR}' GROUP BY neighborhood"
        )
        counts = engine.query(sql)
        expected = pd.concat(pd.read_parquet(path, columns=["neighborhood"]) for path in year_files)
        assert counts["requests"].to_pylist() and sum(counts["requests"].to_pylist()) == len(expected)
        query = median_seconds(lambda: engine.query(sql))
        pandas_query = median_seconds(
            lambda: (
                pd.concat(pd.read_parquet(path, columns=["neighborhood"]) for path in year_files)
                .groupby("neighborhood", dropna=False)
                .size()
            )
        )
        files = ", ".join(f"'{path}'" for path in year_files)
        direct_sql = f"SELECT neighborhood, count(*) FROM read_parquet([{files}]) GROUP BY neighborhood"
        direct = duckdb.connect()
        direct_query = median_seconds(lambda: direct.sql(direct_sql).to_arrow_table())

    rows = [
        (
            f"crawl, first ({len(YEARS)} partitions, {len(data_files)} files, "
            f"{len(data_files) * ROWS_PER_FILE:,} rows)",
            first_crawl,
            CRAWL_TARGET_SECONDS,
            "pyarrow reads every file whole",
            read_everything,
        ),
        (
            "crawl again, nothing changed",
            recrawl,
            CRAWL_TARGET_SECONDS,
            "pyarrow reads every file whole",
            read_everything,
        ),
        (
            f"query: count by neighborhood, year {QUERY_YEAR} ({len(expected):,} rows)",
            query,
            QUERY_TARGET_SECONDS,
            "pandas read_parquet + groupby",
            pandas_query,
        ),
        (
            f"query: count by neighborhood, year {QUERY_YEAR} ({len(expected):,} rows)",
            query,
            QUERY_TARGET_SECONDS,
            "DuckDB on the same files, no catalog",
            direct_query,
        ),
    ]
    print(f"median of {RUNS} runs each\n")
    print("| measure | seconds | target | within target | baseline | baseline seconds | measure / baseline |")
    print("|---|---:|---:|:---:|---|---:|---:|")
    for measure, seconds, target_seconds, baseline, baseline_seconds in rows:
        print(
            f"| {measure} | {seconds:.3f} | <= {target_seconds} | {'yes' if seconds <= target_seconds else 'NO'} "
            f"| {baseline} | {baseline_seconds:.3f} | {seconds / baseline_seconds:.2f} |"
        )


if __name__ == "__main__":
    main()
