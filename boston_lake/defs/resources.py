"""The Dagster resources: thin wrappers of the core's target (lake/targets.py), which the settings choose.

Assets only ever see `portal`, `storage` and `catalog`; whether the zones are folders or S3 buckets is
decided by `build_target`, from `Settings`, so the same assets, checks, sensors and schedules run on a
laptop and on AWS, and the `boston-lake` command builds the very same objects without Dagster.

The settings themselves are the `settings` resource, one config field per declared variable, so the UI's
resource pages show every value in force and, for a value read from the environment, the variable's name.
"""

# No `from __future__ import annotations` here: Dagster reads ResourceDependency from live annotations.
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pyarrow as pa
from dagster import ConfigurableResource, DagsterInstance, EnvVar, InitResourceContext, ResourceDependency
from pydantic import Field, PrivateAttr, create_model

from boston_lake.lake.catalog import Catalog
from boston_lake.lake.catalog.iceberg import IcebergTables
from boston_lake.lake.log import Log
from boston_lake.lake.settings import VARIABLES, Settings, Variable
from boston_lake.lake.source.datastore import DEFAULT_PAGE_LIMIT
from boston_lake.lake.source.portal import CkanPortal
from boston_lake.lake.stores import ObjectStore
from boston_lake.lake.targets import HolderEnded, LakeTarget, build_target
from boston_lake.lake.zones.bronze import ConverterSettings
from boston_lake.lake.zones.silver.duckdb_build import SilverSettings


class LakeSettingsResource(ConfigurableResource):
    """The settings this code location runs with: one field per environment variable (docs/configuration.md).

    Its fields are made from the declarations in lake/settings.py (`DeclaredSettings` below), and `settings()`
    parses them with those same declarations, so what the UI shows is what the runs use.
    """

    def environment(self) -> dict[str, str]:
        """The fields as the environment they stand for (resolved: call it inside a run, not at load)."""
        return {name.upper(): str(value) for name, value in self.model_dump().items() if value}

    def settings(self) -> Settings:
        return Settings.from_env(self.environment())


def _field_description(variable: Variable) -> str:
    scope = " (read only when BOSTON_LAKE_TARGET=aws)" if variable.aws else ""
    return f"{variable.name}: {variable.help}; default {variable.readme_default()}{scope}"


DeclaredSettings = create_model(  # type: ignore[call-overload]  # fields from the declarations, by name
    "LakeSettings",
    __base__=LakeSettingsResource,
    __doc__=LakeSettingsResource.__doc__,
    **{
        variable.name.lower(): (str | None, Field(default=None, description=_field_description(variable)))
        for variable in VARIABLES
    },
)


def settings_resource(settings: Settings, environ: Mapping[str, str]) -> LakeSettingsResource:
    """Each variable as the UI should show it: as its environment variable when the settings were read from
    `environ` (the process's environment), else as the value in force (the demo and tests pass their own)."""
    given = dict(settings.given)
    values: dict[str, Any] = {}
    for variable in VARIABLES:
        text = given.get(variable.name)
        if text is not None and environ.get(variable.name, "").strip() == text:
            values[variable.name.lower()] = EnvVar(variable.name)
        elif text is not None:
            values[variable.name.lower()] = text
        elif variable.default is not None:
            values[variable.name.lower()] = variable.default
    values["boston_lake_home"] = values.get("boston_lake_home") if "BOSTON_LAKE_HOME" in given else str(settings.home)
    return DeclaredSettings(**values)


class CkanPortalResource(ConfigurableResource):
    """The CKAN portal that publishes the 311 data (data.boston.gov, or a mirror for tests and demos)."""

    settings: LakeSettingsResource
    timeout_seconds: float = 60.0
    max_attempts: int = 5
    backoff_seconds: float = 1.0
    progress_interval_seconds: float = 10.0
    datastore_page_limit: int = DEFAULT_PAGE_LIMIT  # records per datastore_search page (the portal may cap it)

    @property
    def new_system_source(self) -> str | None:
        """BOSTON_LAKE_NEW_SYSTEM_SOURCE: datastore, csv, or None for automatic."""
        return self.settings.settings().new_system_source

    def client(self, log: Log) -> CkanPortal:
        return CkanPortal(
            self.settings.settings().portal_url,
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
            progress_interval_seconds=self.progress_interval_seconds,
            log=log,
        )


def run_has_ended(instance: DagsterInstance, run_id: Any) -> bool:
    """True only when `instance` holds the run and it has ended (a run of another instance is not known ended)."""
    run = instance.get_run_by_id(run_id) if isinstance(run_id, str) and run_id else None
    return run is not None and run.is_finished


class LakeStorageResource(ConfigurableResource):
    """The lake's zones: `raw` holds downloads as they came, `lake` holds bronze/ and silver/."""

    target: ResourceDependency[LakeTarget]
    settings: LakeSettingsResource
    _run_id: str | None = PrivateAttr(default=None)
    _holder_ended: HolderEnded | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # The run is named in the partition claims the zones take (leases on S3).
        self._run_id = context.run.run_id if context.run else None
        instance = context.instance
        if instance is not None:  # a claim whose run this instance knows has ended is taken over at once
            self._holder_ended = lambda lease: run_has_ended(instance, lease.get("run_id"))

    def raw_zone(self) -> ObjectStore:
        return self.target.raw_zone(self._run_id, self._holder_ended)

    def lake_zone(self) -> ObjectStore:
        return self.target.lake_zone(self._run_id, self._holder_ended)

    def iceberg(self) -> IcebergTables:
        return self.target.iceberg(self._run_id, self._holder_ended)

    def duckdb_memory_limit(self) -> str:
        """BOSTON_LAKE_DUCKDB_MEMORY_LIMIT: each bronze, silver and gold build's DuckDB memory limit."""
        return self.settings.settings().duckdb_memory_limit

    def max_shrink(self, table: str) -> float:
        """BOSTON_LAKE_MAX_SHRINK (or BOSTON_LAKE_MAX_SHRINK_<TABLE>): the share of its published rows or case ids a
        year of `table` may lose in one build before the build is refused."""
        return self.settings.settings().max_shrink_of(table)

    def snapshot_retention_days(self) -> int:
        """BOSTON_LAKE_SNAPSHOT_RETENTION_DAYS: how long the Iceberg tables' snapshots stay readable."""
        return self.settings.settings().snapshot_retention_days

    def converter_settings(self) -> ConverterSettings:
        return ConverterSettings(memory_limit=self.duckdb_memory_limit())

    def silver_settings(self) -> SilverSettings:
        return SilverSettings(memory_limit=self.duckdb_memory_limit())


class CatalogResource(ConfigurableResource):
    """The catalog the crawler keeps current, how a crawl runs, and the SQL engine that reads through it."""

    target: ResourceDependency[LakeTarget]

    @property
    def database(self) -> str:
        return self.target.database

    def catalog(self) -> Catalog:
        return self.target.catalog()

    def crawl(self, table: str, years: list[int], log: Log, landed_at: datetime) -> tuple[str, list[str]]:
        """Crawl one table's bronze prefix, which holds `years` that landed by `landed_at`; returns the crawl's
        summary and any type conflicts it reported."""
        return self.target.crawl(table, years, log, landed_at)

    def query(self, sql: str) -> pa.Table:
        return self.target.query(sql)


def build_resources(settings: Settings, target: LakeTarget | None = None) -> dict[str, Any]:
    """The resources of the target the settings choose (or of `target`, built from them by the caller)."""
    target = target or build_target(settings)
    declared = settings_resource(settings, os.environ)
    return {
        "settings": declared,
        "portal": CkanPortalResource(settings=declared),
        "storage": LakeStorageResource(target=target, settings=declared),
        "catalog": CatalogResource(target=target),
    }
