"""The end-to-end benchmark's harness at a tiny size: that it runs every measure through the real Dagster CLI
and checks what the runs produced (never how fast they were)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from benchmarks.bench_backfill import (
    BACKFILL,
    CONVERSION,
    DOWNLOAD,
    NOOP,
    RERUN,
    BenchPortal,
    generate_years,
    measure,
    portal_data,
    report,
)
from boston_lake.lake.source.portal import CkanPortal
from boston_lake.lake.tables import LEGACY_REQUESTS
from boston_lake.lake.zones.raw import offered_years

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory):
    return generate_years([2022, 2023], 300_000, tmp_path_factory.mktemp("generated"))


def test_the_portal_offers_each_generated_year_byte_for_byte_even_throttled(files, tmp_path: Path) -> None:
    with BenchPortal(portal_data(files, tmp_path / "portal"), bytes_per_second=10_000_000) as portal:
        assert offered_years(CkanPortal(portal.url).resources(), LEGACY_REQUESTS) == [2022, 2023]
        for url, year in zip(map(portal.download_url, portal.files_by_resource_id), [2022, 2023], strict=True):
            assert requests.get(url, timeout=30).content == files[year].path.read_bytes()


def test_every_measure_runs_and_the_rerun_leaves_raw_and_bronze_untouched(files, tmp_path: Path) -> None:
    results = measure(files, tmp_path, repeat=1, bytes_per_second=None)
    assert list(results.runs) == [BACKFILL, RERUN, NOOP, CONVERSION, DOWNLOAD]
    assert all(run.seconds > 0 and run.peak_rss_kib > 0 for runs in results.runs.values() for run in runs)
    [changed] = results.rerun_changes
    assert not [key for key in changed if key.startswith(("raw/", "bronze/"))], changed
    text = report(results, files, None)
    assert "backfill / pure conversion" in text and "unchanged re-run / do-nothing Dagster run" in text
