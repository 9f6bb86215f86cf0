"""Shared fixtures live in `support/`, one module per subject, all loaded as plugins."""

from pathlib import Path

import pytest

pytest_plugins = sorted(
    f"boston_lake_tests.support.{module.stem}"
    for module in (Path(__file__).parent / "support").glob("*.py")
    if module.stem != "__init__"
)

# A test joins a tier by what it starts: the fixture that starts a server or Spark names the tier, so a new test
# that uses one is never run by `make test-fast` by mistake. Tests that start other costly things mark themselves.
TIER_OF_FIXTURE = {"postgres": "postgres", "dagster_server": "ui", "spark_glue": "spark", "s3a_jars": "spark"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, tier in TIER_OF_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(tier)
