"""The Dagster resources: thin wrappers of the core's target (lake/targets.py), which the settings choose.

Assets only ever see `portal`, `storage` and `catalog`; whether the zones are folders or S3 buckets is
decided by `build_target`, from `Settings`, so the same assets, checks, sensors and schedules run on a
laptop and on AWS, and the `boston-lake` command builds the very same objects without Dagster.
"""

# No `from __future__ import annotations` here: Dagster reads ResourceDependency from live annotations.
from datetime import datetime
from typing import Any

import pyarrow as pa
from dagster import ConfigurableResource, ResourceDependency

from boston_lake.lake.catalog import Catalog
from boston_lake.lake.log import Log
from boston_lake.lake.settings import Settings
from boston_lake.lake.source.datastore import DEFAULT_PAGE_LIMIT
from boston_lake.lake.source.portal import CkanPortal
from boston_lake.lake.stores import ObjectStore
from boston_lake.lake.targets import LakeTarget, build_target
from boston_lake.lake.zones.bronze import ConverterSettings


class CkanPortalResource(ConfigurableResource):
    """The CKAN portal that publishes the 311 data (data.boston.gov, or a mirror for tests and demos)."""

    base_url: str
    timeout_seconds: float = 60.0
    max_attempts: int = 5
    backoff_seconds: float = 1.0
    progress_interval_seconds: float = 10.0
    new_system_source: str | None = None  # BOSTON_LAKE_NEW_SYSTEM_SOURCE: datastore, csv, or None for automatic
    datastore_page_limit: int = DEFAULT_PAGE_LIMIT  # records per datastore_search page (the portal may cap it)

    def client(self, log: Log) -> CkanPortal:
        return CkanPortal(
            self.base_url,
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
            progress_interval_seconds=self.progress_interval_seconds,
            log=log,
        )


class LakeStorageResource(ConfigurableResource):
    """The lake's zones: `raw` holds downloads as they came, `lake` holds bronze/ and silver/."""

    target: ResourceDependency[LakeTarget]
    converter_memory_limit: str = ConverterSettings.memory_limit  # DuckDB's cap while converting to bronze

    def raw_zone(self) -> ObjectStore:
        return self.target.raw_zone()

    def lake_zone(self) -> ObjectStore:
        return self.target.lake_zone()

    def converter_settings(self) -> ConverterSettings:
        return ConverterSettings(memory_limit=self.converter_memory_limit)


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
    return {
        "portal": CkanPortalResource(base_url=settings.portal_url, new_system_source=settings.new_system_source),
        "storage": LakeStorageResource(target=target),
        "catalog": CatalogResource(target=target),
    }
