"""A lake on the embedded target, pointed at the test portal, and a throwaway Dagster instance."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions

from boston_lake.definitions import build_definitions
from boston_lake.lake.settings import Settings


@pytest.fixture
def lake_home(tmp_path: Path) -> Path:
    return tmp_path / "lake_home"


@pytest.fixture
def local_settings(portal, lake_home: Path) -> Settings:
    return Settings.from_env({"BOSTON_LAKE_HOME": str(lake_home), "BOSTON_LAKE_PORTAL_URL": portal.url})


@pytest.fixture
def local_defs(local_settings: Settings) -> Definitions:
    return build_definitions(local_settings)


@pytest.fixture
def dagster_instance() -> Iterator[DagsterInstance]:
    """Dagster's in-memory instance: the same run, event and schedule storages as a SQLite home, at half the cost
    per run (tests that need a home on disk, shared with a subprocess or a daemon, make their own)."""
    with DagsterInstance.ephemeral() as instance:
        yield instance
