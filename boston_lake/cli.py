"""`boston-lake`: query the lake, look at its catalog and zones, run the offline demo."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from tabulate import tabulate

from boston_lake.formatting import format_result
from boston_lake.lake import layout
from boston_lake.lake.aws.provision import AwsClients, ProvisionError, apply, format_plan, plan, task_policy
from boston_lake.lake.aws.resources import ProvisionConfig
from boston_lake.lake.aws.session import AwsSession
from boston_lake.lake.catalog import CatalogError, EntityNotFound
from boston_lake.lake.catalog.iceberg import IcebergError, IcebergTables, TimeTravel
from boston_lake.lake.query.engine import QueryError
from boston_lake.lake.settings import Settings, SettingsError, use_dagster_home
from boston_lake.lake.stores import StoreError
from boston_lake.lake.tables import TABLES
from boston_lake.lake.targets import build_target
from boston_lake.lake.zones.dictionary import DESCRIPTIONS
from boston_lake.lake.zones.status import lake_status
from boston_lake.sample_portal.server import SamplePortal

REPO_INSTANCE_CONFIG = Path(".dagster_home") / "dagster.yaml"


ENVIRONMENT = (
    "reads BOSTON_LAKE_TARGET (local or aws); local: BOSTON_LAKE_HOME (or --home), default .boston_lake; "
    "aws: BOSTON_LAKE_*_BUCKET, AWS_REGION and boto3's credential chain (docs/configuration.md)"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="boston-lake", description=__doc__, epilog=ENVIRONMENT)
    parser.add_argument(
        "--home",
        type=Path,
        help="root of the embedded lake, instead of BOSTON_LAKE_HOME (after `make demo`: .demo/lake)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, environment: str = ENVIRONMENT) -> argparse.ArgumentParser:  # noqa: A002
        return commands.add_parser(name, help=help, description=help, epilog=environment)

    query = command("query", "run SQL over the catalog's tables (DuckDB locally, Athena on AWS)")
    query.add_argument("sql", help='e.g. "SELECT year, count(*) FROM boston311.legacy_requests GROUP BY year"')
    query.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output (default table)")
    travel = query.add_mutually_exclusive_group()
    travel.add_argument(
        "--as-of",
        type=_timestamp,
        metavar="TIMESTAMP",
        help="read silver and gold as they were then (ISO 8601; UTC unless it names a zone, e.g. 2026-08-20T12:00)",
    )
    travel.add_argument(
        "--snapshot", type=int, metavar="ID", help="read the table with this snapshot as it was at it (`history`)"
    )

    history = command("history", "the snapshots of a silver or gold table: when, which year, rows, Dagster run")
    history.add_argument("table", help="service_requests, service_levels or intake")
    history.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output (default table)")

    rollback = command(
        "rollback", "restore a silver or gold table as it was at a snapshot, as a new snapshot (who and why recorded)"
    )
    rollback.add_argument("table", help="service_requests, service_levels or intake")
    rollback.add_argument("--to", type=int, required=True, metavar="SNAPSHOT", help="the snapshot id (`history`)")
    rollback.add_argument("--reason", required=True, help="why, recorded with the new snapshot")

    catalog = command("catalog", "databases, tables, columns, partitions and table versions")
    catalog.add_argument("--table", help="only this table (an unknown name is an error)")

    command(
        "status",
        "per table and year: raw rows, bronze rows, rejects, freshness; what killed runs left behind; with "
        "DAGSTER_HOME, the pool slots its runs hold and who frees them",
        ENVIRONMENT + "; DAGSTER_HOME, if set: the Dagster instance whose pool slots to list",
    )

    report = command(
        "report", "write one self-contained HTML file (opens with no network) of the lake's charts and freshness"
    )
    report.add_argument("--out", type=Path, default=Path("report.html"), help="the HTML file to write")

    provision = command(
        "provision",
        "aws target: create or update the buckets, Glue database, IAM role and crawler",
        "reads BOSTON_LAKE_TARGET=aws, the BOSTON_LAKE_* AWS settings, AWS_REGION and boto3's credential chain",
    )
    provision.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    provision.add_argument(
        "--print-task-policy",
        action="store_true",
        help="print the IAM policy of the role Dagster runs take on ECS (least privilege) and change nothing",
    )

    serve = command("serve-sample-portal", "serve the bundled sample portal on 127.0.0.1", "reads no environment")
    serve.add_argument("--port", type=int, default=8311, help="port on 127.0.0.1 (default 8311, make's SAMPLE_PORT)")

    demo = command(
        "demo",
        "serve the sample portal and materialize every year it offers through Dagster, offline",
        "reads no environment: sets BOSTON_LAKE_HOME, BOSTON_LAKE_PORTAL_URL and DAGSTER_HOME under --dir itself",
    )
    demo.add_argument("--dir", type=Path, default=Path(".demo"), help="where the demo lake and Dagster home go")

    args = parser.parse_args(argv)
    # The settings every command reads: the environment, with --home in place of BOSTON_LAKE_HOME.
    args.environment = {**os.environ, **({"BOSTON_LAKE_HOME": str(args.home.resolve())} if args.home else {})}
    try:
        handler = {
            "query": _query,
            "history": _history,
            "rollback": _rollback,
            "catalog": _catalog,
            "status": _status,
            "report": _report,
            "provision": _provision,
            "serve-sample-portal": _serve,
            "demo": _demo,
        }
        return handler[args.command](args)
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except (CatalogError, StoreError, IcebergError, OSError) as error:
        # A missing, corrupt or locked catalog, an unreadable zone, a home that cannot be written: the
        # message names the file; a traceback would only hide it.
        print(f"boston-lake {args.command}: {error}", file=sys.stderr)
        return 1


def _query(args: argparse.Namespace) -> int:

    target = build_target(Settings.from_env(args.environment))
    try:
        result = target.query(args.sql, TimeTravel(args.as_of, args.snapshot))
    except (QueryError, CatalogError) as error:
        print(f"query failed: {error}", file=sys.stderr)
        return 1
    print(format_result(result, args.format))
    if args.format != "table" and not result.num_rows:
        print("0 rows", file=sys.stderr)  # said apart from the output, which stays valid CSV or JSON
    return 0


def _timestamp(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (e.g. 2026-08-20T12:00:00Z)") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _history(args: argparse.Namespace) -> int:
    tables = build_target(Settings.from_env(args.environment)).iceberg_reader()
    if tables is None:
        print("the lake has no Iceberg tables yet: materialize silver/service_requests first", file=sys.stderr)
        return 1
    entries = tables.history(tables.table(args.table))
    result = pa.Table.from_pylist([entry.row() for entry in entries]) if entries else pa.table({"snapshot": []})
    print(format_result(result, args.format))
    return 0


def _rollback(args: argparse.Namespace) -> int:
    tables = build_target(Settings.from_env(args.environment)).iceberg()
    snapshot = tables.rollback(tables.table(args.table), args.to, args.reason)
    print(f"{tables.database}.{args.table}: snapshot {snapshot.snapshot_id} restores snapshot {args.to}")
    return 0


def _catalog(args: argparse.Namespace) -> int:

    target = build_target(Settings.from_env(args.environment))
    catalog = target.catalog(read_only=True)
    print(f"catalog {catalog.uri()}")
    names = []
    for database in catalog.list_databases():
        print(f"database {database['Name']}")
        try:
            tables = catalog.list_tables(database["Name"])
        except EntityNotFound:
            continue
        names += [table["Name"] for table in tables]
        for table in tables:
            if args.table and table["Name"] != args.table:
                continue
            print(_describe_table(catalog, database["Name"], table))
    iceberg = target.iceberg_reader()
    for name in iceberg.names() if iceberg is not None else []:
        names.append(name)
        if iceberg is not None and (not args.table or name == args.table):
            print(_describe_iceberg_table(iceberg, name))
    if args.table and args.table not in names:
        print(
            f"no table {args.table!r} in the catalog; it has {', '.join(sorted(names)) or 'no tables'}", file=sys.stderr
        )
        return 1
    return 0


def _describe_table(catalog, database: str, table: dict) -> str:
    parameters = table.get("Parameters", {})
    descriptor = table["StorageDescriptor"]
    descriptions = DESCRIPTIONS.get(table["Name"], {})
    columns = [
        (column["Name"], column["Type"], descriptions.get(column["Name"], ""))
        for column in descriptor["Columns"] + table.get("PartitionKeys", [])
    ]
    lines = [
        f"  table {table['Name']}  version {table.get('VersionId', '?')}  {parameters.get('recordCount', '?')} rows  "
        f"{descriptor.get('Location', '')}",
        "    columns (partition keys last):",
        _indented(tabulate(columns, tablefmt="plain"), "      "),
    ]
    if "DEPRECATED_BY_CRAWLER" in parameters:
        lines.append(f"    deprecated by the crawler at {parameters['DEPRECATED_BY_CRAWLER']}")
    partitions = catalog.get_partitions(database, table["Name"])
    rows = [
        {
            "partition": "/".join(p["Values"]),
            "records": p.get("Parameters", {}).get("recordCount"),
            "objects": p.get("Parameters", {}).get("objectCount"),
            "location": p["StorageDescriptor"]["Location"],
        }
        for p in sorted(partitions, key=lambda p: p["Values"])
    ]
    lines.append(_indented(tabulate(rows, headers="keys", tablefmt="plain"), "    ") if rows else "    no partitions")
    versions = catalog.get_table_versions(database, table["Name"])
    lines.append(
        "    versions: "
        + ", ".join(f"{v['VersionId']} ({len(v['Table']['StorageDescriptor']['Columns'])} columns)" for v in versions)
    )
    return "\n".join(lines)


def _indented(text: str, indent: str) -> str:
    return indent + text.replace("\n", "\n" + indent)


def _describe_iceberg_table(tables: IcebergTables, name: str) -> str:
    table = tables.table(name)
    snapshot = table.current_snapshot()
    years = tables.keys_by_year(name)
    rows = {year: sum(f.record_count for f in tables.files(table, year=year)) for year in sorted(years)}
    descriptions = DESCRIPTIONS.get(name, {})
    columns = [(f.name, str(f.field_type), descriptions.get(f.name, "")) for f in table.schema().fields]
    return "\n".join(
        [
            f"  iceberg table {name}  snapshot {snapshot.snapshot_id if snapshot else 'none'}  {table.location()}",
            "    columns:",
            _indented(tabulate(columns, tablefmt="plain"), "      "),
            "    years: " + (", ".join(f"{year} ({count:,} rows)" for year, count in rows.items()) or "none"),
            f"    history: boston-lake history {name}",
        ]
    )


def _status(args: argparse.Namespace) -> int:

    settings = Settings.from_env(args.environment)
    target = build_target(settings)
    raw, lake = target.raw_zone(), target.lake_zone()
    statuses = lake_status(raw, lake, TABLES)
    print(f"target {settings.target}: raw {raw.uri()}, lake {lake.uri()}")
    print(
        tabulate([s.as_row() for s in statuses], headers="keys", tablefmt="github") if statuses else "the lake is empty"
    )
    problems = [status.problem for status in statuses if status.problem]
    for problem in problems:
        print(problem)
    # Locally both zones are one folder: a leftover is listed once.
    leftovers = list(dict.fromkeys(raw.leftovers() + lake.leftovers()))
    if leftovers:
        print("left behind by killed runs (readers never see it; it heals by itself):")
        for leftover in leftovers:
            print(f"  {leftover}")
    # Locally both zones are one folder too: a refused version is listed once.
    refused = {stored.key: (store, stored) for store in (raw, lake) for stored in store.list(layout.REFUSED_PREFIX)}
    if refused:
        print(
            "refused by a blocking audit, kept for inspection (readers never see it; the year's next run removes it):"
        )
        for key, (store, stored) in sorted(refused.items()):
            print(f"  {store.uri(key)} ({stored.size:,} bytes, refused {stored.last_modified:%Y-%m-%d %H:%M} UTC)")
    jammed = False
    dagster_home = args.environment.get("DAGSTER_HOME", "").strip()
    if dagster_home:  # Dagster is imported only then: a plain lake's status runs without it
        jammed = _print_held_pool_slots(Path(dagster_home))
    return 1 if problems or jammed else 0


def _print_held_pool_slots(dagster_home: Path) -> bool:
    """List the pool slots held in the Dagster instance at `dagster_home`, each with its run and who frees it.
    True when a run that has ended holds one and nothing will free it by itself (the pool stays jammed)."""
    if not ((dagster_home / "dagster.yaml").is_file() or (dagster_home / "storage").is_dir()):
        print(f"DAGSTER_HOME {dagster_home} holds no Dagster instance: no pool slots to read")
        return False
    from dagster import DagsterInstance, DagsterRunStatus

    ended = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    lines: list[str] = []
    jammed = False
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        storage = instance.event_log_storage
        if not storage.supports_global_concurrency_limits:
            return False
        free_after = (instance.run_monitoring_settings or {}).get("free_slots_after_run_end_seconds")
        looks = (
            f"every {instance.run_monitoring_poll_interval_seconds} s, while `dagster dev` or `dagster-daemon run` "
            "runs on this instance"
        )
        unfreed = "this instance's dagster.yaml sets no run_monitoring.free_slots_after_run_end_seconds"
        for pool in sorted(storage.get_concurrency_keys()):
            for slot in storage.get_concurrency_info(pool).claimed_slots:
                record = instance.get_run_record_by_id(slot.run_id)
                holder = f"{pool}: held by run {slot.run_id}, step {slot.step_key}"
                free_now = _free_slots_command(dagster_home, slot.run_id)
                if record is None:
                    lines += [f"{holder} (a run this instance no longer has)", f"    to free it: {free_now}"]
                    jammed = True
                elif record.dagster_run.status in ended:
                    end = _utc(record.end_time) if record.end_time else "at an unknown time"
                    who = (
                        f"the daemon frees it {free_after} s after the run ended (it looks {looks})"
                        if free_after
                        else f"nothing frees it by itself: {unfreed}"
                    )
                    lines += [
                        f"{holder} ({record.dagster_run.status.value}, ended {end})",
                        f"    {who}",
                        f"    to free it now: {free_now}",
                    ]
                    jammed = jammed or not free_after
                else:
                    since = f" since {_utc(record.start_time)}" if record.start_time else ""
                    then = (
                        f"the daemon frees the slot {free_after} s later"
                        if free_after
                        else f"nothing frees the slot ({unfreed})"
                    )
                    lines += [
                        f"{holder} ({record.dagster_run.status.value}{since})",
                        "    its step gives it back when it ends; if the run's worker died, run monitoring fails the "
                        f"run and {then} (they look {looks})",
                        f"    to free it now, once you know the run is dead: {free_now}",
                    ]
    if lines:
        print(f"pool slots held in the Dagster instance at {dagster_home}:")
        for line in lines:
            print(f"  {line}")
        print(
            "  (the Dagster UI frees them too: the pool's page, the run's menu, \"Free all concurrency slots for run\")"
        )
    return jammed


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _free_slots_command(dagster_home: Path, run_id: str) -> str:
    """The command that frees a run's slots by hand (Dagster's CLI has none: `dagster instance concurrency` only
    gets and sets limits; the UI's pool page has it in the run's menu, "Free all concurrency slots for run")."""
    code = (
        "from dagster import DagsterInstance; "
        f"DagsterInstance.get().event_log_storage.free_concurrency_slots_for_run('{run_id}')"
    )
    return f"DAGSTER_HOME={shlex.quote(str(dagster_home))} {shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def _report(args: argparse.Namespace) -> int:
    # Imported here: plotly and matplotlib load for the report alone.
    from boston_lake.lake.answers.report import write_report

    try:
        path = write_report(args.out, build_target(Settings.from_env(args.environment)))
    except (QueryError, CatalogError) as error:
        print(
            f"report failed: {error}\nthe report reads silver and gold: materialize silver/service_requests, "
            "gold/service_levels and gold/intake first",
            file=sys.stderr,
        )
        return 1
    print(f"report written to {path}")
    return 0


def _provision(args: argparse.Namespace) -> int:

    settings = Settings.from_env(args.environment)
    if settings.aws is None:
        print("provision works on the aws target: set BOSTON_LAKE_TARGET=aws and the bucket variables", file=sys.stderr)
        return 2
    config = ProvisionConfig.from_settings(settings.aws)
    try:
        clients = AwsClients.create(AwsSession.from_settings(settings.aws))
        if args.print_task_policy:
            print(json.dumps(task_policy(config, clients), indent=2))
            return 0
        actions = plan(config, clients)
        print(format_plan(actions))
        if not args.dry_run:
            logging.basicConfig(level=logging.INFO, format="%(message)s")
            apply(actions, logging.getLogger("boston_lake.provision"))
    except ProvisionError as error:
        print(f"provisioning failed: {error}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:

    with SamplePortal(port=args.port) as portal:
        print(f"sample portal serving on {portal.url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def _as_typed(path: Path) -> str:
    """A path as a person pastes it where they are: relative when it is below the current folder."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _command_as_typed() -> str:
    """`boston-lake` when the shell finds this very command, else its path (a venv that is not activated)."""
    installed = Path(sys.executable).parent / "boston-lake"
    found = shutil.which("boston-lake")
    if not installed.exists() or (found and Path(found).resolve() == installed.resolve()):
        return "boston-lake"
    return _as_typed(installed)


def _demo(args: argparse.Namespace) -> int:
    """The whole ingest path on real sample rows: portal -> raw -> bronze, with Dagster's own runs."""
    from boston_lake.demo import run_demo  # imported here: Dagster loads for the demo alone, not for status/query

    base = args.dir.resolve()
    dagster_home = base / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if REPO_INSTANCE_CONFIG.is_file():
        shutil.copyfile(REPO_INSTANCE_CONFIG, dagster_home / "dagster.yaml")
    with SamplePortal() as portal:
        use_dagster_home(dagster_home)
        print(f"sample portal on {portal.url}; lake in {base / 'lake'}; Dagster home {dagster_home}")
        # Read like any environment (not built field by field), so the UI's settings page shows the demo's values.
        demo_lake = Settings.from_env({"BOSTON_LAKE_HOME": str(base / "lake"), "BOSTON_LAKE_PORTAL_URL": portal.url})
        command = f"{_command_as_typed()} --home {_as_typed(base / 'lake')}"
        if run_demo(demo_lake, base / "report.html", command):
            return 1
    print(f'\nnext:\n  {command} status      (or catalog, query "SELECT …")')
    if base == Path(".demo").resolve():
        print("  make demo-ui     the Dagster UI over this lake on http://127.0.0.1:3000 (DAGSTER_PORT to change it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
