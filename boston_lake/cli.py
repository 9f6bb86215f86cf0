"""`boston-lake`: look at the lake, run the offline demo, serve the sample portal."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from boston_lake.lake.settings import Settings, SettingsError
from boston_lake.lake.tables import TABLES

REPO_INSTANCE_CONFIG = Path(".dagster_home") / "dagster.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="boston-lake", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("status", help="per table and year: raw rows, bronze rows, rejects, freshness")

    serve = commands.add_parser("serve-sample-portal", help="serve the bundled sample portal on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8311)

    demo = commands.add_parser(
        "demo", help="serve the sample portal and materialize every year it offers through Dagster, offline"
    )
    demo.add_argument("--dir", type=Path, default=Path(".demo"), help="where the demo lake and Dagster home go")

    args = parser.parse_args(argv)
    try:
        return {"status": _status, "serve-sample-portal": _serve, "demo": _demo}[args.command](args)
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2


def _zones(settings: Settings):
    from boston_lake.defs.resources import build_resources

    storage = build_resources(settings)["storage"]
    return storage.raw_zone(), storage.lake_zone()


def _status(args: argparse.Namespace) -> int:
    from boston_lake.lake.status import lake_status

    settings = Settings.from_env()
    raw, lake = _zones(settings)
    rows = [status.as_row() for status in lake_status(raw, lake, TABLES)]
    print(f"target {settings.target}: raw {raw.uri()}, lake {lake.uri()}")
    print(tabulate(rows, headers="keys", tablefmt="github") if rows else "the lake is empty")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from boston_lake.sample_portal.server import SamplePortal

    with SamplePortal(port=args.port) as portal:
        print(f"sample portal serving on {portal.url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def _demo(args: argparse.Namespace) -> int:
    """The whole ingest path on real sample rows: portal -> raw -> bronze, with Dagster's own runs."""
    from boston_lake.sample_portal.server import SamplePortal

    base = args.dir.resolve()
    dagster_home = base / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if REPO_INSTANCE_CONFIG.is_file():
        shutil.copyfile(REPO_INSTANCE_CONFIG, dagster_home / "dagster.yaml")
    with SamplePortal() as portal:
        os.environ.update(
            BOSTON_LAKE_TARGET="local",
            BOSTON_LAKE_HOME=str(base / "lake"),
            BOSTON_LAKE_PORTAL_URL=portal.url,
            DAGSTER_HOME=str(dagster_home),
        )
        print(f"sample portal on {portal.url}; lake in {base / 'lake'}; Dagster home {dagster_home}")
        from boston_lake.demo import run_demo

        return run_demo(Settings.from_env())


if __name__ == "__main__":
    raise SystemExit(main())
