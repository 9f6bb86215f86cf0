"""Bronze conversion benchmark: the bronze converter against the seed's pandas way and plain engines.

Every engine converts the same Boston-shaped CSV (real sample rows, fresh ids and dates) in a process of
its own, so that a peak RSS is one engine's alone. Throughput and memory are reported as ratios against
what was measured in the same run, never against fixed numbers, because machines differ.

    python benchmarks/bench_bronze.py --sizes 50MB,500MB --engines bronze,pandas_seed,duckdb_plain,pyarrow_csv

An engine takes settings in brackets, e.g. `bronze[threads=1,preserve_insertion_order=false]`: for bronze,
ConverterSettings' fields go through ConverterSettings and anything else straight to DuckDB's config.
Bracketed engines are explorations: they are neither the baseline nor the bronze that the verdict judges.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from boston_lake.lake.source.csvscan import iter_records, parse_header
from boston_lake.lake.tables import LEGACY_REQUESTS, NEW_SYSTEM_REQUESTS, LakeTable
from boston_lake.sample_portal.server import DATA_DIR

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results.md"
RESULTS_TITLE = "# Bronze benchmark results\n\nAppended by `bench_bronze.py --markdown`, newest last; see README.md.\n"
RSS_TARGET_MIB = 300
MB = 1_000_000  # sizes and MB/s are decimal; RSS is in MiB, as the target is
MIB_PER_KIB = 1024
ROW_GROUP_ROWS = 122_880  # bronze's row group size, so that pyarrow_csv writes comparable files
GENERATOR_VERSION = 1  # bump when generated files change, so that cached ones are rebuilt
CHUNK_ROWS = 50_000
SIZE_UNITS = {"KB": 1_000, "MB": MB, "GB": 1_000 * MB}
T = TypeVar("T")


class BenchError(RuntimeError):
    """The benchmark could not run or an engine's output is wrong; the message names the engine and file."""


# --- Boston-shaped input -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """Which real rows a generated file is made of, and the year its fresh open dates fall in."""

    name: str
    table: LakeTable
    samples: tuple[str, ...]
    year: int
    first_id: int
    id_prefix: str = ""


SHAPES = {
    shape.name: shape
    for shape in (
        Shape(
            "legacy_v2",
            LEGACY_REQUESTS,
            ("legacy_v2_2013_bu-spark_filtered_every4th.csv", "legacy_v2_2023_bu-spark_animal_reports_every5th.csv"),
            year=2023,
            first_id=900_000_000_000,  # same width as real ids (1010...), far from them
        ),
        Shape(
            "new_system",
            NEW_SYSTEM_REQUESTS,
            ("new_system_2025-08_to_2026-02_soham-bhagwat_api_extract.csv",),
            year=2026,
            first_id=90_000_000,
            id_prefix="BCS-",
        ),
    )
}

_STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(.*)")


@dataclass(frozen=True)
class Templates:
    """The sample rows split into what is renewed (id, three timestamps) and what is kept byte for byte.

    The sources put the id and three timestamps first; the two later timestamps keep their distance from
    the open date, so a generated case still closes after it opens.
    """

    header: bytes
    offsets: np.ndarray  # (rows, 2) seconds from the open date; 0 where absent
    present: np.ndarray  # (rows, 2) whether the later timestamps are there
    suffixes: list[tuple[str, str, str]]  # what follows the seconds: fraction and zone ("", ".539+00")
    rests: list[str]  # the fields after the timestamps, line end included
    mean_row_bytes: float  # renewed values are as wide as the originals, so this is the generated rows' mean too


def load_templates(shape: Shape) -> Templates:
    header: bytes | None = None
    offsets, present, suffixes, rests, sizes = [], [], [], [], []
    for name in shape.samples:
        path = DATA_DIR / name
        with open(path, "rb") as stream:
            records = iter_records(stream)
            first = next(records)
            if header is None:
                header = first.data
                _check_leading_columns(shape, parse_header(first), path)
            elif first.data.rstrip(b"\r\n") != header.rstrip(b"\r\n"):
                raise BenchError(f"{path}: header differs from {shape.samples[0]}'s; a file has one header")
            for record in records:
                fields = record.data.decode("utf-8").split(",", 4)
                stamps = [_STAMP.fullmatch(value) for value in fields[1:4]]
                if (
                    '"' in "".join(fields[:4])
                    or stamps[0] is None
                    or any(value and stamp is None for value, stamp in zip(fields[2:4], stamps[1:], strict=True))
                ):
                    raise BenchError(
                        f"{path} record {record.number}: expected an unquoted id and timestamps "
                        f"first, found {fields[:4]}"
                    )
                opened = _epoch(stamps[0].group(1))
                offsets.append([_epoch(stamp.group(1)) - opened if stamp else 0 for stamp in stamps[1:]])
                present.append([stamp is not None for stamp in stamps[1:]])
                suffixes.append(tuple(stamp.group(2) if stamp else "" for stamp in stamps))
                rests.append(fields[4])
                sizes.append(len(record.data))
    assert header is not None
    return Templates(
        header, np.array(offsets, dtype=np.int64), np.array(present), suffixes, rests, statistics.fmean(sizes)
    )


def _check_leading_columns(shape: Shape, header: list[str], path: Path) -> None:
    generation = shape.table.match_generation(header)
    types = generation.types
    if (
        header[0] != generation.id_column
        or header[1] != generation.opened_column
        or not all(types[name].startswith("TIMESTAMP") for name in header[1:4])
    ):
        raise BenchError(
            f"{path}: expected {generation.id_column}, {generation.opened_column} and two more "
            f"timestamps as the first columns, found {header[:4]}"
        )


def _epoch(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())


@dataclass(frozen=True)
class Generated:
    path: Path
    shape: str
    rows: int
    bytes: int


def generate_csv(shape: Shape, target_bytes: int, work_dir: Path, seed: int | None = None) -> Generated:
    """A CSV of at least `target_bytes` (a few rows over at most), made once per shape and size, kept in work_dir.

    The random generator is seeded with the size (or `seed`), so a size always gives the same file, on any machine.
    """
    path = work_dir / (
        f"{shape.name}-{target_bytes}.csv" if seed is None else f"{shape.name}-{target_bytes}-{seed}.csv"
    )
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists():
        known = json.loads(sidecar.read_text())
        if known["generator"] == GENERATOR_VERSION and known["bytes"] == path.stat().st_size:
            return Generated(path, shape.name, known["rows"], known["bytes"])
    work_dir.mkdir(parents=True, exist_ok=True)
    templates = load_templates(shape)
    rng = np.random.default_rng(target_bytes if seed is None else seed)
    year_start = _epoch(f"{shape.year}-01-01 00:00:00")
    year_seconds = _epoch(f"{shape.year + 1}-01-01 00:00:00") - year_start
    partial = path.with_suffix(".partial")
    rows = 0
    with open(partial, "wb") as out:
        written = out.write(templates.header)
        while written < target_bytes:
            count = min(CHUNK_ROWS, int((target_bytes - written) / templates.mean_row_bytes) + 1)
            opened = year_start + rng.integers(0, year_seconds, count)
            chunk = _rows(templates, shape, rows, rng.integers(0, len(templates.rests), count), opened)
            written += out.write(chunk)
            rows += count
    partial.replace(path)
    sidecar.write_text(json.dumps({"generator": GENERATOR_VERSION, "rows": rows, "bytes": written}))
    return Generated(path, shape.name, rows, written)


def _rows(templates: Templates, shape: Shape, first_row: int, picks: np.ndarray, opened: np.ndarray) -> bytes:
    later = opened[:, None] + templates.offsets[picks]
    stamps = np.strings.replace(
        np.datetime_as_string(np.column_stack([opened, later]).astype("datetime64[s]"), unit="s"), "T", " "
    )
    lines = []
    for number, pick, (open_text, *later_texts), later_present in zip(
        range(shape.first_id + first_row, shape.first_id + first_row + len(picks)),
        picks.tolist(),
        stamps.tolist(),
        templates.present[picks].tolist(),
        strict=True,
    ):
        open_suffix, *later_suffixes = templates.suffixes[pick]
        fields = [f"{shape.id_prefix}{number}", open_text + open_suffix]
        fields += [
            text + suffix if there else ""
            for text, suffix, there in zip(later_texts, later_suffixes, later_present, strict=True)
        ]
        fields.append(templates.rests[pick])
        lines.append(",".join(fields))
    return "".join(lines).encode("utf-8")


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(KB|MB|GB)", text.strip().upper())
    if not match or float(match.group(1)) <= 0:
        raise BenchError(f"size {text!r}: expected a positive number and KB, MB or GB (decimal), e.g. 500MB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2)])


# --- Engines, each run in a process of its own -----------------------------------------------------------

Options = dict[str, Any]


@dataclass(frozen=True)
class EngineReport:
    reported_rows: int | None = None
    rejects: int = 0
    first_reject: str = ""


@dataclass(frozen=True)
class Engine:
    name: str
    modules: tuple[str, ...]  # imported before the clock starts: interpreter and import cost is not conversion
    convert: Callable[[Path, Path, LakeTable, Options], EngineReport]
    takes_duckdb_settings: bool = False


def _bronze(source: Path, destination: Path, table: LakeTable, options: Options) -> EngineReport:
    from boston_lake.lake.zones.bronze import ConverterSettings, convert_csv

    known = {setting.name for setting in dataclasses.fields(ConverterSettings)}
    settings = {key: value for key, value in options.items() if key in known}
    extra = {key: value for key, value in options.items() if key not in known}
    if extra:
        _add_duckdb_config(extra)
    conversion = convert_csv(source, destination, table, settings=ConverterSettings(**settings))
    first = conversion.rejects[0] if conversion.rejects else None
    return EngineReport(conversion.rows, conversion.rejects, f"line {first.line}: {first.reason}" if first else "")


def _add_duckdb_config(extra: Options) -> None:
    """Lets a DuckDB setting be measured in bronze before ConverterSettings exposes it (this process only)."""
    import duckdb

    connect = duckdb.connect

    def connect_with_extra(*args: Any, config: Options | None = None, **kwargs: Any) -> Any:
        return connect(*args, config={**(config or {}), **extra}, **kwargs)

    duckdb.connect = connect_with_extra


def _pandas_seed(source: Path, destination: Path, table: LakeTable, options: Options) -> EngineReport:
    """The seed's way: the whole object in memory, pandas infers the types."""
    import io

    import pandas

    with open(source, "rb") as stream:
        buffer = io.BytesIO(stream.read())
    frame = pandas.read_csv(buffer)
    frame.to_parquet(destination, engine="pyarrow", compression="zstd")
    return EngineReport(len(frame))


def _duckdb_plain(source: Path, destination: Path, table: LakeTable, options: Options) -> EngineReport:
    """DuckDB as it comes: sniffed types, default memory limit (80% of RAM) and threads."""
    import duckdb

    with duckdb.connect(config=options) as connection:
        (rows,) = connection.execute(
            f"COPY (SELECT * FROM read_csv_auto({_sql_string(source)})) TO {_sql_string(destination)} "
            "(FORMAT parquet, COMPRESSION zstd)"
        ).fetchone()
    return EngineReport(int(rows))


def _sql_string(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _pyarrow_csv(source: Path, destination: Path, table: LakeTable, options: Options) -> EngineReport:
    """A fair streaming baseline: the same explicit types as bronze, block by block, bronze's row groups."""
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds

    from boston_lake.lake.source.csvscan import read_header

    header, _ = read_header(source)
    schema = table.match_generation(header).arrow_schema(header)
    reader = pacsv.open_csv(
        source,
        convert_options=pacsv.ConvertOptions(column_types=schema, null_values=["", " "], strings_can_be_null=True),
    )
    ds.write_dataset(
        reader,
        destination,
        format="parquet",
        basename_template="part-{i}.parquet",
        file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
        min_rows_per_group=ROW_GROUP_ROWS,
        max_rows_per_group=ROW_GROUP_ROWS,
    )
    return EngineReport()


def _polars(source: Path, destination: Path, table: LakeTable, options: Options) -> EngineReport:
    """polars' streaming engine given bronze's explicit column types (left to infer, it guesses ward codes
    such as 0502A to be integers from the first rows and fails)."""
    import polars

    from boston_lake.lake.source.csvscan import read_header

    header, _ = read_header(source)
    schema = polars.from_arrow(table.match_generation(header).arrow_schema(header).empty_table()).schema
    polars.scan_csv(source, schema=schema, null_values=["", " "]).sink_parquet(
        destination, compression="zstd", row_group_size=ROW_GROUP_ROWS
    )
    return EngineReport()


ENGINES = {
    engine.name: engine
    for engine in (
        Engine("bronze", ("boston_lake.lake.zones.bronze",), _bronze, takes_duckdb_settings=True),
        Engine("pandas_seed", ("pandas", "pyarrow.parquet"), _pandas_seed),
        Engine("duckdb_plain", ("duckdb",), _duckdb_plain, takes_duckdb_settings=True),
        Engine(
            "pyarrow_csv",
            ("pyarrow.csv", "pyarrow.dataset", "boston_lake.lake.source.csvscan", "boston_lake.lake.tables"),
            _pyarrow_csv,
        ),
        Engine("polars", ("polars", "boston_lake.lake.source.csvscan", "boston_lake.lake.tables"), _polars),
    )
}
DEFAULT_ENGINES = "bronze,pandas_seed,duckdb_plain,pyarrow_csv,polars"


@dataclass(frozen=True)
class EngineSpec:
    label: str  # as given on the command line, settings included
    engine: Engine
    options: Options = field(default_factory=dict)

    @property
    def is_bronze(self) -> bool:
        return self.engine.name == "bronze"

    @property
    def is_baseline(self) -> bool:
        return not self.is_bronze and not self.options

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_]+", "_", self.label).strip("_")


def parse_engines(text: str) -> list[EngineSpec]:
    specs: list[EngineSpec] = []
    for item in re.split(r",(?![^\[]*\])", text):  # commas between brackets separate settings, not engines
        match = re.fullmatch(r"\s*(\w+)\s*(?:\[([^\[\]]*)\])?\s*", item)
        if not match or match.group(1) not in ENGINES:
            raise BenchError(
                f"engine {item.strip()!r}: expected one of {', '.join(ENGINES)}, "
                "optionally with settings in brackets, e.g. bronze[threads=1]"
            )
        engine = ENGINES[match.group(1)]
        options = dict(_parse_option(item.strip(), pair) for pair in (match.group(2) or "").split(",") if pair)
        if options and not engine.takes_duckdb_settings:
            raise BenchError(f"engine {item.strip()!r}: only bronze and duckdb_plain take settings")
        if any(spec.label == item.strip() for spec in specs):
            raise BenchError(f"engine {item.strip()!r} is listed twice")
        specs.append(EngineSpec(item.strip(), engine, options))
    return specs


def _parse_option(item: str, pair: str) -> tuple[str, Any]:
    key, equals, value = (part.strip() for part in pair.partition("="))
    if not equals or not key or not value:
        raise BenchError(f"engine {item!r}: setting {pair!r} is not name=value")
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    return key, int(value) if value.isdigit() else value


def installed(spec: EngineSpec) -> bool:
    return all(importlib.util.find_spec(module.split(".")[0]) for module in spec.engine.modules)


def status_kib(field_name: str) -> int:
    """A /proc/self/status field: VmHWM is the peak RSS of this process's own memory, threads included."""
    match = re.search(rf"^{field_name}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if not match:
        raise BenchError(f"/proc/self/status has no {field_name}: peak RSS needs Linux")
    return int(match.group(1))


def timed(modules: tuple[str, ...], work: Callable[[], T]) -> tuple[T, dict[str, Any]]:
    """In a child: import `modules`, then time `work` alone; its seconds, and the RSS before it and the peak."""
    for module in modules:
        importlib.import_module(module)
    start_rss = status_kib("VmRSS")
    started = time.perf_counter()
    value = work()
    seconds = time.perf_counter() - started
    return value, {"seconds": seconds, "start_rss_kib": start_rss, "peak_rss_kib": status_kib("VmHWM")}


def run_child(job: dict[str, Any]) -> None:
    """The engine's process: import, then time the conversion alone, then report the peak RSS of it all."""
    spec = next(iter(parse_engines(job["engine"])))
    report, result = timed(
        spec.engine.modules,
        lambda: spec.engine.convert(Path(job["csv"]), Path(job["out"]), SHAPES[job["shape"]].table, dict(spec.options)),
    )
    result.update(reported_rows=report.reported_rows, rejects=report.rejects, first_reject=report.first_reject)
    Path(job["result"]).write_text(json.dumps(result))


def child_result(script: Path, flag: str, job: dict[str, Any], result_path: Path, what: str) -> dict[str, Any]:
    """Runs `script flag <job as JSON>` in a fresh interpreter and returns the JSON it left at `result_path`."""
    result_path.unlink(missing_ok=True)
    child = subprocess.run(
        [sys.executable, str(script), flag, json.dumps(job)], capture_output=True, text=True, check=False
    )
    if child.returncode != 0 or not result_path.exists():
        raise BenchError(f"{what} failed (exit {child.returncode}):\n{child.stderr.strip()[-3000:]}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    result_path.unlink()
    return result


# --- Measuring ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_kib: int
    start_rss_kib: int
    output_bytes: int


def run_engine(spec: EngineSpec, generated: Generated, work_dir: Path) -> Run:
    """One conversion in a fresh interpreter, its output checked against the generated row count.

    The child reports its own VmHWM: a parent's wait4/RUSAGE_CHILDREN ru_maxrss is no good here, because
    Linux carries the parent's peak RSS into the child's at exec, so a child of a big parent looks big.
    """
    out_dir = work_dir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    destination = out_dir / f"{spec.slug}.parquet"
    result_path = out_dir / f"{spec.slug}.result.json"
    _remove(destination)
    job = {
        "engine": spec.label,
        "csv": str(generated.path),
        "out": str(destination),
        "shape": generated.shape,
        "result": str(result_path),
    }
    result = child_result(
        Path(__file__).resolve(), "--run-engine", job, result_path, f"{spec.label} on {generated.path}"
    )
    rows, output_bytes = _parquet_rows_and_bytes(destination)
    _check_rows(spec, generated, rows, result)
    _remove(destination)
    return Run(result["seconds"], result["peak_rss_kib"], result["start_rss_kib"], output_bytes)


def _check_rows(spec: EngineSpec, generated: Generated, rows: int, result: dict[str, Any]) -> None:
    where = f"{spec.label} on {generated.path}"
    if result["rejects"]:
        raise BenchError(
            f"{where}: {result['rejects']} rows rejected from generated data, first {result['first_reject']}"
        )
    if result["reported_rows"] is not None and result["reported_rows"] != rows:
        raise BenchError(f"{where}: reported {result['reported_rows']} rows but its Parquet holds {rows}")
    if rows != generated.rows:
        raise BenchError(f"{where}: the Parquet holds {rows} rows, the CSV {generated.rows}")


def _parquet_rows_and_bytes(path: Path) -> tuple[int, int]:
    import pyarrow.dataset as ds

    if not path.exists():
        raise BenchError(f"{path}: the engine wrote no output")
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    return ds.dataset(files, format="parquet").count_rows(), sum(file.stat().st_size for file in files)


def _remove(path: Path) -> None:
    if path.is_dir():
        for file in path.iterdir():
            file.unlink()
        path.rmdir()
    else:
        path.unlink(missing_ok=True)


def warm_page_cache(path: Path) -> None:
    """Every engine reads from memory, the first one included, so none pays for the disk alone."""
    with open(path, "rb") as stream:
        while stream.read(16 * MB):
            pass


@dataclass(frozen=True)
class Measurement:
    size: str
    input_bytes: int
    rows: int
    engine: str
    is_baseline: bool
    seconds: float  # median over repeats
    peak_rss_mib: float  # highest over repeats
    start_rss_mib: float
    output_bytes: int

    @property
    def mb_per_second(self) -> float:
        return self.input_bytes / MB / self.seconds


def measure(
    sizes: list[str],
    specs: list[EngineSpec],
    shape: Shape,
    work_dir: Path,
    repeat: int,
    log: Callable[[str], None] = lambda message: None,
) -> list[Measurement]:
    measurements = []
    for size in sizes:
        log(f"{size}: generating or reusing a {shape.name} CSV in {work_dir}")
        generated = generate_csv(shape, parse_size(size), work_dir)
        warm_page_cache(generated.path)
        runs: dict[str, list[Run]] = {spec.label: [] for spec in specs}
        for attempt in range(repeat):  # engines interleaved, so that drift in the machine hits all of them
            for spec in specs:
                run = run_engine(spec, generated, work_dir)
                runs[spec.label].append(run)
                log(
                    f"{size} {spec.label} run {attempt + 1}/{repeat}: {run.seconds:.2f} s, "
                    f"peak RSS {run.peak_rss_kib / MIB_PER_KIB:.0f} MiB"
                )
        for spec in specs:
            done = runs[spec.label]
            measurements.append(
                Measurement(
                    size,
                    generated.bytes,
                    generated.rows,
                    spec.label,
                    spec.is_baseline,
                    statistics.median(run.seconds for run in done),
                    max(run.peak_rss_kib for run in done) / MIB_PER_KIB,
                    max(run.start_rss_kib for run in done) / MIB_PER_KIB,
                    done[-1].output_bytes,
                )
            )
    return measurements


# --- Reporting ---------------------------------------------------------------------------------------------


def _fastest_baseline(measurements: list[Measurement], size: str) -> Measurement | None:
    baselines = [m for m in measurements if m.size == size and m.is_baseline]
    return max(baselines, key=lambda m: m.mb_per_second, default=None)


def markdown_table(measurements: list[Measurement]) -> str:
    lines = [
        "| size | engine | rows | seconds | MB/s | MB/s vs fastest baseline | peak RSS MiB | "
        f"RSS after imports MiB | peak RSS vs {RSS_TARGET_MIB} MiB | Parquet MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        fastest = _fastest_baseline(measurements, m.size)
        ratio = f"{m.mb_per_second / fastest.mb_per_second:.2f}x {fastest.engine}" if fastest else "n/a"
        rss_ratio = m.peak_rss_mib / RSS_TARGET_MIB
        lines.append(
            f"| {m.size} | {m.engine} | {m.rows:,} | {m.seconds:.2f} | {m.mb_per_second:.1f} | {ratio} | "
            f"{m.peak_rss_mib:.0f} | {m.start_rss_mib:.0f} | {rss_ratio:.2f} {'ok' if rss_ratio <= 1 else 'OVER'} | "
            f"{m.output_bytes / MB:.1f} |"
        )
    return "\n".join(lines)


def verdicts(measurements: list[Measurement]) -> list[str]:
    """One line per target, for the default bronze engine (bracketed variants are explorations)."""
    bronze = [m for m in measurements if m.engine == "bronze"]
    if not bronze:
        return ["No verdict: the default `bronze` engine was not measured."]
    speed = []
    for m in bronze:
        fastest = _fastest_baseline(measurements, m.size)
        if fastest:
            speed.append((m.size, m.mb_per_second / fastest.mb_per_second, fastest.engine))
    lines = []
    if speed:
        met = all(ratio >= 1 for _, ratio, _ in speed)
        detail = "; ".join(f"{size} {ratio:.2f}x {engine}" for size, ratio, engine in speed)
        lines.append(f"Throughput (bronze >= fastest baseline engine): {'MET' if met else 'MISSED'} - {detail}.")
    else:
        lines.append("Throughput: no verdict, no baseline engine was measured.")
    worst = max(m.peak_rss_mib for m in bronze)
    detail = "; ".join(f"{m.size} {m.peak_rss_mib:.0f} MiB" for m in bronze)
    lines.append(
        f"Memory (bronze peak RSS <= {RSS_TARGET_MIB} MiB at every size): "
        f"{'MET' if worst <= RSS_TARGET_MIB else 'MISSED'} - {detail}."
    )
    return lines


def machine_info() -> list[str]:
    cpu = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    memory = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    versions = ", ".join(f"{name} {_version(name)}" for name in ("duckdb", "pyarrow", "pandas", "numpy", "polars"))
    ram = f"{int(memory.group(1)) / 2**20:.1f} GiB" if memory else "unknown"
    return [
        f"cores: {os.cpu_count()} ({cpu.group(1) if cpu else 'unknown CPU'}), RAM: {ram}",
        f"python {platform.python_version()} on {platform.system()} {platform.release()}",
        versions,
    ]


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def report(measurements: list[Measurement], notes: list[str], command: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"## {stamp}", "", f"`{command}`", ""]
    parts += [f"- {line}" for line in machine_info()]
    parts += ["", markdown_table(measurements), ""]
    parts += [f"- {line}" for line in verdicts(measurements) + notes]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50MB,500MB", help="comma-separated CSV sizes, e.g. 50MB,500MB,2GB")
    parser.add_argument(
        "--engines",
        default=DEFAULT_ENGINES,
        help=f"comma-separated, of {', '.join(ENGINES)}; settings in brackets: bronze[threads=1]",
    )
    parser.add_argument(
        "--table", choices=sorted(SHAPES), default="legacy_v2", help="which real sample rows the CSV is made of"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine and size; the median time is kept")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / ".work", help="generated CSVs and outputs")
    parser.add_argument("--markdown", action="store_true", help=f"append a dated section to {RESULTS}")
    parser.add_argument("--run-engine", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_engine:
        run_child(json.loads(args.run_engine))
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        specs = parse_engines(args.engines)
        sizes = [size.strip() for size in args.sizes.split(",")]
        for size in sizes:
            parse_size(size)
        missing = [spec for spec in specs if not installed(spec)]
        notes = [f"{spec.label}: skipped, {', '.join(spec.engine.modules)} not installed" for spec in missing]
        measurements = measure(
            sizes,
            [spec for spec in specs if spec not in missing],
            SHAPES[args.table],
            args.work_dir,
            args.repeat,
            log=lambda message: print(message, file=sys.stderr),
        )
    except BenchError as error:
        print(f"bench_bronze: {error}", file=sys.stderr)
        return 1
    command = shlex.join(["python", "benchmarks/bench_bronze.py", *(sys.argv[1:] if argv is None else argv)])
    text = report(measurements, notes, command)
    print(text)
    if args.markdown:
        append_results(text)
    return 0


def append_results(text: str) -> None:
    """Append a dated section to benchmarks/results.md (created with its title on first use)."""
    first = not RESULTS.exists()
    with open(RESULTS, "a", encoding="utf-8") as results:
        if first:
            results.write(RESULTS_TITLE)
        results.write("\n" + text)


if __name__ == "__main__":
    sys.exit(main())
