"""End-to-end speed: a backfill through Dagster and the re-run that finds nothing new, each against a baseline
measured in the same run.

N Boston-shaped legacy years (bench_bronze's generator, every open date within its year) are served by the
sample portal on 127.0.0.1, optionally throttled. Then, in each repeat, on a fresh lake and Dagster home:

- backfill: the ingest job over the years (raw, then bronze), then the crawl job over them, as a UI backfill
  and the crawl sensor run them, with the shipped code location (its executor and checks);
- unchanged re-run: the ingest run again, as the daily refresh; the portal answers 304, the crawl sensor
  requests nothing, and the lake must not change;
- pure conversion: `convert_csv` of the same files one after another in one process;
- do-nothing run: the ingest run's three steps on benchmarks/noop_definitions.py, doing no work;
- download alone: the same files fetched one after another with requests into files, nothing else.

Conversion and download are timed after their imports; Dagster runs are timed whole, process start
included, since a user waits for that too. Peak RSS is the highest of the measured process and its
children. Ratios are of medians.

    python benchmarks/bench_backfill.py --years 4 --size 200MB --repeat 3
    python benchmarks/bench_backfill.py --years 4 --size 200MB --repeat 3 --throttle-mbps 50
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_bronze import (  # noqa: E402
    MB,
    SHAPES,
    BenchError,
    Generated,
    generate_csv,
    machine_info,
    parse_size,
)
from boston_lake.defs.keys import RANGE_END, RANGE_START  # noqa: E402
from boston_lake.lake import layout  # noqa: E402
from boston_lake.lake.stores import STAGING_DIR  # noqa: E402
from boston_lake.lake.tables import DATABASE, LEGACY_REQUESTS, LakeTable  # noqa: E402
from boston_lake.sample_portal.server import DATA_DIR, PortalHandler, SamplePortal  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
LAST_YEAR = 2023  # generated years end here; the first legacy partition is 2011
INSTANCE_CONFIG = ROOT / ".dagster_home" / "dagster.yaml"  # what `make dev` runs with
MIB_PER_KIB = 1024
BACKFILL_VS_CONVERSION = 1.5
BACKFILL_VS_DOWNLOAD = 1.15  # when the portal is throttled
RERUN_VS_NOOP = 1.5

# Spawns a command and reports its wall time, exit code and the peak RSS of it and its children
# (wait4's ru_maxrss). It is a bare interpreter so that the peak it passes on at exec is small.
_MEASURE = """
import json, os, sys, time
argv, env, out = json.loads(sys.argv[1])
started = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, env)
_, status, usage = os.wait4(pid, 0)
result = {"seconds": time.perf_counter() - started, "exit": os.waitstatus_to_exitcode(status),
          "peak_rss_kib": usage.ru_maxrss}
with open(out, "w") as stream:
    json.dump(result, stream)
"""

# Runs commands one after another and exits with the first failure's code.
_IN_TURN = """
import json, os, sys
for argv in json.loads(sys.argv[1]):
    code = os.waitstatus_to_exitcode(os.waitpid(os.posix_spawn(argv[0], argv, os.environ), 0)[1])
    if code:
        sys.exit(code)
"""


# --- The portal --------------------------------------------------------------------------------------------


class _PacedWriter:
    """A socket writer that sends no faster than `bytes_per_second`, as a distant portal would."""

    def __init__(self, stream: BinaryIO, bytes_per_second: float):
        self.stream = stream
        self.bytes_per_second = bytes_per_second
        self.started = time.monotonic()
        self.sent = 0

    def write(self, data: bytes) -> int:
        written = self.stream.write(data)
        self.sent += len(data)
        ahead = self.sent / self.bytes_per_second - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class _PacedHandler(PortalHandler):
    def send_download(self, path: Path) -> None:
        rate = self.portal.bytes_per_second  # type: ignore[attr-defined]
        if not rate:
            super().send_download(path)
            return
        plain = self.wfile
        self.wfile = _PacedWriter(plain, rate)  # type: ignore[assignment]
        try:
            super().send_download(path)
        finally:
            self.wfile = plain


class BenchPortal(SamplePortal):
    """The sample portal over generated files that never change: each file is hashed once, not per request."""

    def __init__(self, data_dir: Path, bytes_per_second: float | None):
        super().__init__(data_dir, handler=_PacedHandler)
        self.bytes_per_second = bytes_per_second
        self._hashes: dict[Path, str] = {}

    def content_md5(self, path: Path) -> str:
        # By the file a name leads to: the portal's folder links to the generated files, and a hash warmed by the
        # generated file's own name must serve the first package_show (else it hashes every file, in the run's time).
        target = path.resolve()
        if target not in self._hashes:
            self._hashes[target] = super().content_md5(target)
        return self._hashes[target]


def generate_years(years: list[int], size: int, work_dir: Path) -> dict[int, Generated]:
    base = SHAPES["legacy_v2"]
    return {
        year: generate_csv(dataclasses.replace(base, name=f"{base.name}_{year}", year=year), size, work_dir)
        for year in years
    }


def portal_data(files: dict[int, Generated], folder: Path, more: Mapping[str, Path] | None = None) -> Path:
    """A sample-portal folder offering the generated files as the real package's legacy resources of their
    years, and `more` files as the resources of those ids (resource id -> file)."""
    config = json.loads((DATA_DIR / "portal.json").read_text())
    package = json.loads((DATA_DIR / config["package"]).read_text())["result"]
    ids = {}
    for resource in package["resources"]:
        match = LEGACY_REQUESTS.resource_pattern.match(" ".join((resource.get("name") or "").split()))
        if match and int(match["year"]) in files:
            ids[int(match["year"])] = resource["id"]
    missing = sorted(set(files) - set(ids))
    if missing:
        raise BenchError(f"the bundled package offers no legacy resource for {missing}")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copyfile(DATA_DIR / config["package"], folder / config["package"])
    for year, generated in files.items():
        (folder / f"tmp_{year}.csv").symlink_to(generated.path)
    mapping = {ids[year]: f"tmp_{year}.csv" for year in files}
    for resource_id, path in (more or {}).items():
        (folder / f"tmp_{resource_id}.csv").symlink_to(path)
        mapping[resource_id] = f"tmp_{resource_id}.csv"
    (folder / "portal.json").write_text(json.dumps({"package": config["package"], "files_by_resource_id": mapping}))
    return folder


# --- Measuring ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_kib: int


def measured(argv: list[str], env: dict[str, str], scratch: Path, what: str) -> Run:
    """Run `argv` under the measuring wrapper; the command's own result file, if it writes one, gives the time."""
    result = scratch / "measure.json"
    inner = scratch / "inner.json"
    result.unlink(missing_ok=True)
    inner.unlink(missing_ok=True)
    env = {**env, "BENCH_RESULT": str(inner)}
    child = subprocess.run(
        [sys.executable, "-S", "-c", _MEASURE, json.dumps([argv, env, str(result)])],
        capture_output=True,
        text=True,
        check=False,
    )
    outcome = json.loads(result.read_text()) if result.exists() else {"exit": child.returncode}
    if outcome["exit"] != 0 or child.returncode != 0:
        raise BenchError(f"{what} failed (exit {outcome['exit']}):\n{(child.stderr or child.stdout)[-4000:]}")
    seconds = json.loads(inner.read_text())["seconds"] if inner.exists() else outcome["seconds"]
    return Run(seconds, outcome["peak_rss_kib"])


def child_env(lake_home: Path, dagster_home: Path, portal_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "BOSTON_LAKE_HOME": str(lake_home),
        "BOSTON_LAKE_PORTAL_URL": portal_url,
        "DAGSTER_HOME": str(dagster_home),
    }


def range_tags(years: list[int]) -> str:
    return json.dumps({RANGE_START: str(years[0]), RANGE_END: str(years[-1])})


def lake_runs(years: list[int]) -> list[list[str]]:
    """The runs a backfill of raw, bronze and catalog becomes: the ingest job over the range (raw, then bronze),
    then the crawl job over the same range, as the crawl sensor requests it; each through the shipped code
    location, so with its executor and checks."""
    dagster = [sys.executable, "-m", "dagster", "job", "execute", "-m", "boston_lake.definitions"]
    return [
        [*dagster, "-j", f"{job}_{LEGACY_REQUESTS.name}", "--tags", range_tags(years)] for job in ("ingest", "crawl")
    ]


def noop_run(module: Path, years: list[int]) -> list[str]:
    """The ingest run's steps on benchmarks/noop_definitions.py: raw, bronze and its checks, doing nothing."""
    return [
        *[sys.executable, "-m", "dagster", "asset", "materialize", "-f", str(module)],
        *["--select", "noop/raw,noop/bronze", "--partition-range", f"{years[0]}...{years[-1]}"],
    ]


def in_turn(runs: list[list[str]]) -> list[str]:
    """One measured command that runs `runs` one after another, as the daemon launches a backfill's runs (a bare
    interpreter: it adds no imports to the time, and its own small peak to the RSS)."""
    return [sys.executable, "-S", "-c", _IN_TURN, json.dumps(runs)]


def lake_snapshot(home: Path) -> dict[str, tuple[int, int]]:
    """Every object of the lake (catalog included) with its size and modification time; staging left out."""
    return {
        path.relative_to(home).as_posix(): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in home.rglob("*")
        if path.is_file() and STAGING_DIR not in path.relative_to(home).parts
    }


def check_backfill(home: Path, files: dict[int, Generated]) -> None:
    """Every year is in bronze with every generated row, and registered in the catalog."""
    import pyarrow.parquet as pq

    from boston_lake.lake.catalog.local import LocalCatalog

    for year, generated in files.items():
        path = home / layout.bronze_data_key(LEGACY_REQUESTS.name, year)
        rows = pq.ParquetFile(path).metadata.num_rows if path.exists() else 0
        if rows != generated.rows:
            raise BenchError(f"bronze {year}: {path} holds {rows} rows, the generated CSV {generated.rows}")
    catalog = LocalCatalog(home / "catalog" / "catalog.sqlite")
    registered = {int(p["Values"][0]) for p in catalog.get_partitions(DATABASE, LEGACY_REQUESTS.name)}
    if not set(files) <= registered:
        raise BenchError(f"catalog: years {sorted(set(files) - registered)} are not registered")


def changed_objects(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


@dataclass
class Results:
    runs: dict[str, list[Run]] = dataclasses.field(default_factory=dict)
    rerun_changes: list[list[str]] = dataclasses.field(default_factory=list)

    def add(self, name: str, run: Run, log: Callable[[str], None]) -> None:
        self.runs.setdefault(name, []).append(run)
        log(f"{name}: {run.seconds:.2f} s, peak RSS {run.peak_rss_kib / MIB_PER_KIB:.0f} MiB")

    def seconds(self, name: str) -> float:
        return statistics.median(run.seconds for run in self.runs[name])

    def peak_mib(self, name: str) -> float:
        return max(run.peak_rss_kib for run in self.runs[name]) / MIB_PER_KIB


BACKFILL, RERUN, CONVERSION, NOOP, DOWNLOAD = (
    "backfill",
    "unchanged re-run",
    "pure conversion",
    "do-nothing Dagster run",
    "download alone",
)


def measure(
    files: dict[int, Generated],
    work_dir: Path,
    repeat: int,
    bytes_per_second: float | None,
    log: Callable[[str], None] = lambda message: None,
) -> Results:
    years = sorted(files)
    results = Results()
    with BenchPortal(portal_data(files, work_dir / "portal"), bytes_per_second) as portal:
        for generated in files.values():  # hashed once, before any clock runs
            portal.content_md5(generated.path)
            _read_through(generated.path)
        urls = [portal.download_url(resource_id) for resource_id in portal.files_by_resource_id]
        for attempt in range(1, repeat + 1):
            log(f"repeat {attempt} of {repeat}")
            with tempfile.TemporaryDirectory(prefix="bench_backfill_", dir=work_dir) as scratch_dir:
                scratch = Path(scratch_dir)
                lake, dagster_home = scratch / "lake", scratch / "dagster_home"
                dagster_home.mkdir()
                if INSTANCE_CONFIG.exists():
                    shutil.copyfile(INSTANCE_CONFIG, dagster_home / "dagster.yaml")
                env = child_env(lake, dagster_home, portal.url)
                lake_run = in_turn(lake_runs(years))
                results.add(BACKFILL, measured(lake_run, env, scratch, BACKFILL), log)
                check_backfill(lake, files)
                before = lake_snapshot(lake)
                # The daily refresh finding nothing new: the ingest run alone (the crawl sensor requests no crawl
                # for bronze that did not change).
                refresh = in_turn(lake_runs(years)[:1])
                results.add(RERUN, measured(refresh, env, scratch, RERUN), log)
                results.rerun_changes.append(changed_objects(before, lake_snapshot(lake)))
                noop_module = BENCH_DIR / "noop_definitions.py"
                results.add(NOOP, measured(noop_run(noop_module, years), env, scratch, NOOP), log)
                convert = [sys.executable, __file__, "--convert", json.dumps([str(files[y].path) for y in years])]
                results.add(CONVERSION, measured(convert, env, scratch, CONVERSION), log)
                download = [sys.executable, __file__, "--download", json.dumps([urls, str(scratch / "downloads")])]
                results.add(DOWNLOAD, measured(download, env, scratch, DOWNLOAD), log)
    return results


def _read_through(path: Path) -> None:
    """Every run reads the generated files from the page cache, the first one included."""
    with open(path, "rb") as stream:
        while stream.read(16 * MB):
            pass


# --- The baselines' own processes -------------------------------------------------------------------------


def convert_files(paths: list[Path], table: LakeTable = LEGACY_REQUESTS) -> float:
    """The files of `table` through the bronze converter, one after another, with its default settings."""
    from boston_lake.lake.zones.bronze import convert_csv

    with tempfile.TemporaryDirectory(prefix="bench_convert_") as out:
        started = time.perf_counter()
        for number, path in enumerate(paths):
            convert_csv(path, Path(out) / f"{number}.parquet", table)
        return time.perf_counter() - started


def download_files(urls: list[str], folder: Path) -> float:
    """The files over HTTP, streamed to disk in the raw zone's chunk size; no hashing, no checks."""
    import requests

    from boston_lake.lake.source.portal import CHUNK_BYTES

    folder.mkdir(parents=True, exist_ok=True)
    with requests.Session() as session:
        started = time.perf_counter()
        for number, url in enumerate(urls):
            with session.get(url, stream=True, timeout=60) as response, open(folder / f"{number}.csv", "wb") as sink:
                response.raise_for_status()
                for chunk in response.iter_content(CHUNK_BYTES):
                    sink.write(chunk)
        return time.perf_counter() - started


def _report_inner(seconds: float) -> None:
    Path(os.environ["BENCH_RESULT"]).write_text(json.dumps({"seconds": seconds}))


# --- Reporting ---------------------------------------------------------------------------------------------


def report(results: Results, files: dict[int, Generated], bytes_per_second: float | None) -> str:
    total = sum(generated.bytes for generated in files.values())
    size_mb = next(iter(files.values())).bytes / MB
    portal = f"throttled to {bytes_per_second / MB:.0f} MB/s" if bytes_per_second else "loopback, unthrottled"
    lines = [
        f"{len(files)} legacy years x {size_mb:.0f} MB ({total / MB:.0f} MB, "
        f"{sum(g.rows for g in files.values()):,} rows), portal {portal}; "
        f"medians of {len(results.runs[BACKFILL])}",
        "",
        "| measure | seconds | runs | peak RSS MiB |",
        "|---|---:|---|---:|",
    ]
    for name, runs in results.runs.items():
        each = ", ".join(f"{run.seconds:.2f}" for run in runs)
        lines.append(f"| {name} | {results.seconds(name):.2f} | {each} | {results.peak_mib(name):.0f} |")
    lines += ["", *[f"- {line}" for line in verdicts(results, bytes_per_second)]]
    lines += ["", *[f"- {line}" for line in machine_info()]]
    return "\n".join(lines) + "\n"


def verdicts(results: Results, bytes_per_second: float | None) -> list[str]:
    backfill = results.seconds(BACKFILL)
    lines = []
    if bytes_per_second:
        ratio = backfill / results.seconds(DOWNLOAD)
        lines.append(_verdict("backfill / download alone", ratio, BACKFILL_VS_DOWNLOAD))
        lines.append(f"backfill / pure conversion: {backfill / results.seconds(CONVERSION):.2f}x (judged unthrottled)")
    else:
        ratio = backfill / results.seconds(CONVERSION)
        lines.append(_verdict("backfill / pure conversion", ratio, BACKFILL_VS_CONVERSION))
    ratio = results.seconds(RERUN) / results.seconds(NOOP)
    lines.append(_verdict("unchanged re-run / do-nothing Dagster run", ratio, RERUN_VS_NOOP))
    changes = sorted({key for changed in results.rerun_changes for key in changed})
    lines.append(
        "unchanged re-run wrote nothing to the lake: "
        + ("MET" if not changes else f"MISSED, changed {len(changes)} objects: {', '.join(changes[:5])}")
    )
    return lines


def _verdict(name: str, ratio: float, target: float) -> str:
    return f"{name}: {ratio:.2f}x, target <= {target}x: {'MET' if ratio <= target else 'MISSED'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--years", type=int, default=4, help=f"legacy years, ending with {LAST_YEAR}")
    parser.add_argument("--size", default="200MB", help="CSV size of each year, e.g. 200MB")
    parser.add_argument("--repeat", type=int, default=1, help="measurements of each; medians are reported")
    parser.add_argument("--throttle-mbps", type=float, help="the portal sends at most this many MB/s")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / ".work", help="generated CSVs and scratch")
    parser.add_argument("--convert", help=argparse.SUPPRESS)
    parser.add_argument("--download", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.convert:
        _report_inner(convert_files([Path(path) for path in json.loads(args.convert)]))
        return 0
    if args.download:
        urls, folder = json.loads(args.download)
        _report_inner(download_files(urls, Path(folder)))
        return 0
    if not 1 <= args.years <= LAST_YEAR - LEGACY_REQUESTS.first_year + 1:
        parser.error(f"--years must be 1 to {LAST_YEAR - LEGACY_REQUESTS.first_year + 1}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.throttle_mbps is not None and args.throttle_mbps <= 0:
        parser.error("--throttle-mbps must be positive")
    bytes_per_second = args.throttle_mbps * MB if args.throttle_mbps else None
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        years = list(range(LAST_YEAR - args.years + 1, LAST_YEAR + 1))
        log(f"generating or reusing {args.years} years of {args.size} in {args.work_dir}")
        files = generate_years(years, parse_size(args.size), args.work_dir)
        results = measure(files, args.work_dir, args.repeat, bytes_per_second, log)
    except BenchError as error:
        print(f"bench_backfill: {error}", file=sys.stderr)
        return 1
    print(report(results, files, bytes_per_second))
    return 0


if __name__ == "__main__":
    sys.exit(main())
