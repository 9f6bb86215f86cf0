"""Silver benchmark: building one silver year on the embedded target, against the bronze conversion of that year.

Three Boston-shaped legacy v2 years Y-1, Y, Y+1 (bench_bronze's generator, ~300,000 cases each, open dates
within their year) are listed as the portal lists them: each yearly file also holds copies of its neighbours'
cases opened near New Year (the last `--overlap-days` of the year before, the first of the year after), and v2's
shifted clock moves the cases of New Year's Eve evening into the next year. Bronze is built for all three
years (not timed). Then, in each repeat and each in a fresh process (imports excluded from the time, peak RSS
from the child's own VmHWM):

- bronze: `convert_csv` of year Y's CSV, the baseline (bench_bronze's `bronze` engine);
- silver: `SilverZone.build(Y, force=True)` over the three bronze years: transform, read-back summary, Iceberg commit;
- rewrite: DuckDB copying year Y's bronze file to a new Parquet file, with silver's DuckDB settings and writer
  options and no transform: the least any silver that reads and writes the year can cost (not a target).

Every silver run is checked against an independent count of the bronze files: rows = distinct case ids whose
Boston open date falls in Y, no id twice, and the ledger adds up (candidates = rows + merged + moved away).

    python benchmarks/bench_silver.py --repeat 3
    python benchmarks/bench_silver.py --cases 30000 --markdown
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_bronze import (  # noqa: E402
    MIB_PER_KIB,
    RESULTS,
    RSS_TARGET_MIB,
    SHAPES,
    BenchError,
    Generated,
    append_results,
    child_result,
    generate_csv,
    load_templates,
    machine_info,
    parse_engines,
    run_engine,
    timed,
    warm_page_cache,
)
from boston_lake.lake import layout  # noqa: E402
from boston_lake.lake.source.csvscan import iter_records  # noqa: E402
from boston_lake.lake.tables import LEGACY_REQUESTS  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
SHAPE = SHAPES["legacy_v2"]
SPEED_TARGET = 0.5  # silver wall <= 0.5x the bronze conversion of the same year (issue 8, point 10)
SILVER_MODULES = ("boston_lake.lake.zones.silver.duckdb_build", "boston_lake.lake.stores")
IDS_PER_YEAR = 10_000_000  # each year's generated ids start this far from the previous year's
LOG = logging.getLogger("bench_silver")


# --- The three years, as the portal lists them ------------------------------------------------------------


@dataclass(frozen=True)
class Year:
    year: int
    csv: Generated  # the listed file: its own cases, then its neighbours' New Year copies
    own_rows: int
    copied_rows: int


def _base(year: int, center: int, cases: int, work_dir: Path) -> Generated:
    """One year's own cases: fresh ids of its own, open dates uniform within the year, its own random draw."""
    shape = dataclasses.replace(
        SHAPE, name=f"{SHAPE.name}_{year}", year=year, first_id=SHAPE.first_id + (year - center) * IDS_PER_YEAR
    )
    target_bytes = int(cases * load_templates(SHAPE).mean_row_bytes)
    return generate_csv(shape, target_bytes, work_dir, seed=year)


def _near_new_year(csv: Path, first: str, last: str) -> list[bytes]:
    """The records of `csv` whose open time (the second field; ids and times are never quoted) is in [first, last)."""
    picked = []
    with open(csv, "rb") as stream:
        records = iter_records(stream)
        next(records)
        for record in records:
            opened = record.data.split(b",", 2)[1].decode()
            if first <= opened < last:
                picked.append(record.data)
    return picked


def listed_years(center: int, cases: int, overlap_days: int, work_dir: Path) -> dict[int, Year]:
    """Years center-1..center+1, each file its own cases plus copies of its neighbours' cases near New Year."""
    work_dir.mkdir(parents=True, exist_ok=True)
    bases = {year: _base(year, center, cases, work_dir) for year in (center - 1, center, center + 1)}
    years = {}
    for year, base in bases.items():
        path = work_dir / f"{SHAPE.name}-listed-{year}-{base.rows}-{overlap_days}.csv"
        sidecar = path.with_suffix(".json")
        if path.exists() and sidecar.exists() and json.loads(sidecar.read_text())["bytes"] == path.stat().st_size:
            known = json.loads(sidecar.read_text())
        else:
            copies: list[bytes] = []
            before, after = bases.get(year - 1), bases.get(year + 1)
            if before:
                start = datetime(year, 1, 1) - timedelta(days=overlap_days)
                copies += _near_new_year(before.path, f"{start:%Y-%m-%d}", f"{year}-01-01")
            if after:
                end = datetime(year + 1, 1, 1) + timedelta(days=overlap_days)
                copies += _near_new_year(after.path, f"{year + 1}-01-01", f"{end:%Y-%m-%d}")
            partial = path.with_suffix(".partial")
            with open(partial, "wb") as out, open(base.path, "rb") as own:
                while chunk := own.read(1 << 24):
                    out.write(chunk)
                for record in copies:
                    out.write(record)
            partial.replace(path)
            known = {"rows": base.rows + len(copies), "copied": len(copies), "bytes": path.stat().st_size}
            sidecar.write_text(json.dumps(known))
        generated = Generated(path, SHAPE.name, known["rows"], known["bytes"])
        years[year] = Year(year, generated, base.rows, known["copied"])
    return years


def build_bronze(years: dict[int, Year], lake: Path) -> None:
    """Bronze of every year in `lake` (a LocalObjectStore folder), by the real converter; not timed."""
    from boston_lake.lake.stores import LocalObjectStore
    from boston_lake.lake.zones.bronze import convert_csv

    store = LocalObjectStore(lake)
    for year in years.values():
        key = layout.bronze_data_key(LEGACY_REQUESTS.name, year.year)
        with store.scratch_file(".parquet") as staged:
            conversion = convert_csv(year.csv.path, staged, LEGACY_REQUESTS)
            if conversion.rows != year.csv.rows or conversion.rejects:
                raise BenchError(
                    f"bronze {year.year}: {conversion.rows} rows and {conversion.rejects} rejects "
                    f"from {year.csv.rows} generated rows"
                )
            store.publish(staged, key)


@dataclass(frozen=True)
class Expected:
    """What silver Y must hold, counted from the bronze files without the transform's SQL."""

    rows: int  # distinct case ids whose open time, in Boston, falls in Y
    duplicates: int  # further copies of those cases
    bronze_rows: int  # every row of the three bronze years


def expected_silver(lake: Path, center: int) -> Expected:
    import duckdb

    files = [
        str(lake / layout.bronze_data_key(LEGACY_REQUESTS.name, year)) for year in (center - 1, center, center + 1)
    ]
    # v2 times are Boston wall clocks converted as if they were UTC: read as Boston time, shown in UTC, they are
    # the wall clock again (docs/silver.md, "Time rules").
    local_year = "year(timezone('UTC', timezone('America/New_York', open_dt)))"
    with duckdb.connect() as connection:
        copies, cases, total = connection.execute(
            f"SELECT count(*) FILTER (WHERE {local_year} = {center}), "
            f"count(DISTINCT case_enquiry_id) FILTER (WHERE {local_year} = {center}), count(*) "
            f"FROM read_parquet({files!r})"
        ).fetchone()
    return Expected(rows=int(cases), duplicates=int(copies) - int(cases), bronze_rows=int(total))


# --- The silver child, and its check -----------------------------------------------------------------------


def run_silver_child(job: dict[str, Any]) -> None:
    """Silver's process: import, then time `SilverZone.build` alone, then report the peak RSS of it all."""

    def build() -> Any:
        from boston_lake.lake.targets import LocalTarget
        from boston_lake.lake.zones.silver.duckdb_build import SilverZone

        return SilverZone(LocalTarget(Path(job["lake"])).iceberg(), LOG).build(int(job["year"]), force=True)

    partition, result = timed(SILVER_MODULES, build)
    result.update(
        key=partition.key, rows=partition.summary.rows, ledger=partition.ledger, bronze_rows_read=partition.inputs.rows
    )
    Path(job["result"]).write_text(json.dumps(result))


def run_rewrite_child(job: dict[str, Any]) -> None:
    """The floor's process: year Y's bronze file copied to Parquet as silver writes it, nothing else."""

    def rewrite() -> int:
        import duckdb

        from boston_lake.lake.duck import sql_literal
        from boston_lake.lake.zones.silver.duckdb_build import ROW_GROUP_ROWS, SilverSettings

        settings = SilverSettings()
        with duckdb.connect(config={"memory_limit": settings.memory_limit, "threads": settings.threads}) as con:
            con.execute("SET preserve_insertion_order = false")
            (rows,) = con.execute(
                f"COPY (SELECT * FROM read_parquet({sql_literal(job['source'])})) TO {sql_literal(job['out'])} "
                f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
            ).fetchone()
        return int(rows)

    rows, result = timed(("duckdb", "boston_lake.lake.zones.silver.duckdb_build"), rewrite)
    result.update(rows=rows)
    Path(job["result"]).write_text(json.dumps(result))


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_kib: int
    start_rss_kib: int


def run_silver(lake: Path, center: int, expected: Expected, work_dir: Path) -> Run:
    result_path = work_dir / "silver.result.json"
    job = {"lake": str(lake), "year": center, "result": str(result_path)}
    result = child_result(Path(__file__).resolve(), "--run-silver", job, result_path, f"silver {center} in {lake}")
    check_silver(lake, center, expected, result)
    return Run(result["seconds"], result["peak_rss_kib"], result["start_rss_kib"])


def run_rewrite(lake: Path, center: int, rows: int, work_dir: Path) -> Run:
    source = lake / layout.bronze_data_key(LEGACY_REQUESTS.name, center)
    out = work_dir / "out" / "rewrite.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    result_path = work_dir / "rewrite.result.json"
    job = {"source": str(source), "out": str(out), "result": str(result_path)}
    result = child_result(Path(__file__).resolve(), "--run-rewrite", job, result_path, f"rewrite of {source}")
    out.unlink()
    if result["rows"] != rows:
        raise BenchError(f"rewrite of {source}: {result['rows']} rows written, the file holds {rows}")
    return Run(result["seconds"], result["peak_rss_kib"], result["start_rss_kib"])


def check_silver(lake: Path, center: int, expected: Expected, result: dict[str, Any]) -> None:
    """The published year against the independent count, and the ledger against itself."""
    import duckdb

    path = lake / result["key"]  # the data file the Iceberg commit made the year
    with duckdb.connect() as connection:
        rows, distinct, outside = connection.execute(
            "SELECT count(*), count(DISTINCT case_id), "
            f"count(*) FILTER (WHERE year(timezone('America/New_York', opened_at)) <> {center}) "
            f"FROM read_parquet('{path}')"
        ).fetchone()
    ledger = result["ledger"]
    problems = []
    if result["bronze_rows_read"] != expected.bronze_rows:
        problems.append(f"read {result['bronze_rows_read']} bronze rows, the three years hold {expected.bronze_rows}")
    if not rows == distinct == result["rows"] == expected.rows:
        problems.append(
            f"{rows} rows ({distinct} distinct ids, {result['rows']} reported); "
            f"bronze has {expected.rows} cases opened in {center}"
        )
    if outside:
        problems.append(f"{outside} rows opened outside {center} in Boston")
    if ledger["duplicates_merged"] != expected.duplicates:
        problems.append(f"merged {ledger['duplicates_merged']} copies, bronze has {expected.duplicates}")
    accounted = rows + ledger["duplicates_merged"] + ledger["moved_to_neighbour_year"]
    if ledger["candidate_rows"] != accounted:
        problems.append(f"ledger: {ledger['candidate_rows']} candidates, but rows + merged + moved = {accounted}")
    if problems:
        raise BenchError(f"silver {center} in {path}: " + "; ".join(problems))


# --- Measuring and reporting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    year: int
    bronze_rows: int  # rows of year Y's CSV (the baseline's input)
    bronze_read: int  # rows of the three bronze years silver reads
    silver_rows: int
    duplicates: int
    bronze: list[Run]
    silver: list[Run]
    rewrite: list[Run]

    @staticmethod
    def median(runs: list[Run]) -> float:
        return statistics.median(run.seconds for run in runs)

    @staticmethod
    def peak_mib(runs: list[Run]) -> float:
        return max(run.peak_rss_kib for run in runs) / MIB_PER_KIB

    @staticmethod
    def start_mib(runs: list[Run]) -> float:
        return max(run.start_rss_kib for run in runs) / MIB_PER_KIB

    @property
    def ratio(self) -> float:
        return self.median(self.silver) / self.median(self.bronze)


def measure(
    center: int,
    cases: int,
    overlap_days: int,
    work_dir: Path,
    repeat: int,
    log: Callable[[str], None] = lambda message: None,
) -> Measurement:
    log(f"generating or reusing {center - 1}..{center + 1}, ~{cases:,} cases each, in {work_dir}")
    years = listed_years(center, cases, overlap_days, work_dir)
    lake = work_dir / "silver-lake"
    log(f"building bronze for {', '.join(str(year) for year in years)} in {lake}")
    build_bronze(years, lake)
    expected = expected_silver(lake, center)
    baseline = next(iter(parse_engines("bronze")))
    for year in years.values():
        warm_page_cache(year.csv.path)
    bronze: list[Run] = []
    silver: list[Run] = []
    rewrite: list[Run] = []
    for attempt in range(repeat):  # interleaved, so that drift in the machine hits all three
        bronze_run = run_engine(baseline, years[center].csv, work_dir)
        bronze.append(Run(bronze_run.seconds, bronze_run.peak_rss_kib, bronze_run.start_rss_kib))
        silver.append(run_silver(lake, center, expected, work_dir))
        rewrite.append(run_rewrite(lake, center, years[center].csv.rows, work_dir))
        log(
            f"run {attempt + 1}/{repeat}: bronze {bronze[-1].seconds:.2f} s, {bronze[-1].peak_rss_kib / 1024:.0f} MiB; "
            f"silver {silver[-1].seconds:.2f} s, {silver[-1].peak_rss_kib / 1024:.0f} MiB; "
            f"rewrite {rewrite[-1].seconds:.2f} s"
        )
    return Measurement(
        center,
        years[center].csv.rows,
        expected.bronze_rows,
        expected.rows,
        expected.duplicates,
        bronze,
        silver,
        rewrite,
    )


def markdown_table(m: Measurement) -> str:
    lines = [
        "| step | input rows | output rows | median s | runs s | vs bronze | peak RSS MiB | RSS after imports MiB |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, rows_in, rows_out, runs in (
        (f"bronze {m.year} (baseline)", m.bronze_rows, m.bronze_rows, m.bronze),
        (f"silver {m.year}", m.bronze_read, m.silver_rows, m.silver),
        (f"rewrite of bronze {m.year} (floor)", m.bronze_rows, m.bronze_rows, m.rewrite),
    ):
        each = ", ".join(f"{run.seconds:.2f}" for run in runs)
        lines.append(
            f"| {name} | {rows_in:,} | {rows_out:,} | {m.median(runs):.2f} | {each} | "
            f"{m.median(runs) / m.median(m.bronze):.2f}x | {m.peak_mib(runs):.0f} | {m.start_mib(runs):.0f} |"
        )
    return "\n".join(lines)


def verdicts(m: Measurement) -> list[str]:
    speed_met = m.ratio <= SPEED_TARGET
    memory_met = m.peak_mib(m.silver) <= RSS_TARGET_MIB
    return [
        f"Speed (silver <= {SPEED_TARGET}x bronze of the same year): {'MET' if speed_met else 'MISSED'} - "
        f"{m.median(m.silver):.2f} s vs {m.median(m.bronze):.2f} s, {m.ratio:.2f}x.",
        f"Memory (silver peak RSS <= {RSS_TARGET_MIB} MiB): {'MET' if memory_met else 'MISSED'} - "
        f"{m.peak_mib(m.silver):.0f} MiB.",
        f"Floor: copying year {m.year}'s bronze file to Parquet, with no transform, takes "
        f"{m.median(m.rewrite):.2f} s, {m.median(m.rewrite) / m.median(m.bronze):.2f}x bronze: the least a silver "
        f"that reads and writes the year can cost.",
        f"Rows: silver read {m.bronze_read:,} bronze rows of three years and wrote {m.silver_rows:,} cases, "
        f"{m.duplicates:,} copies merged, as counted from bronze without the transform.",
    ]


def report(m: Measurement, command: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = Path("/proc/loadavg").read_text().split()[:3]
    parts = [f"## {stamp} (silver)", "", f"`{command}`", ""]
    parts += [f"- {line}" for line in machine_info()] + [f"- load average at the end: {' '.join(load)}"]
    parts += ["", markdown_table(m), ""]
    parts += [f"- {line}" for line in verdicts(m)]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--year", type=int, default=SHAPE.year, help="the silver year Y; bronze Y-1..Y+1 is built")
    parser.add_argument("--cases", type=int, default=300_000, help="own cases per bronze year (before the copies)")
    parser.add_argument("--overlap-days", type=int, default=1, help="days either side of New Year listed twice")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each step; the median time is kept")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / ".work" / "silver", help="generated files")
    parser.add_argument("--markdown", action="store_true", help=f"append a dated section to {RESULTS}")
    parser.add_argument("--run-silver", help=argparse.SUPPRESS)
    parser.add_argument("--run-rewrite", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_silver:
        run_silver_child(json.loads(args.run_silver))
        return 0
    if args.run_rewrite:
        run_rewrite_child(json.loads(args.run_rewrite))
        return 0
    if args.repeat < 1 or args.cases < 1 or args.overlap_days < 0:
        parser.error("--repeat and --cases must be at least 1, --overlap-days at least 0")
    try:
        measurement = measure(
            args.year,
            args.cases,
            args.overlap_days,
            args.work_dir,
            args.repeat,
            log=lambda message: print(message, file=sys.stderr),
        )
    except BenchError as error:
        print(f"bench_silver: {error}", file=sys.stderr)
        return 1
    command = shlex.join(["python", "benchmarks/bench_silver.py", *(sys.argv[1:] if argv is None else argv)])
    text = report(measurement, command)
    print(text)
    if args.markdown:
        append_results(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
