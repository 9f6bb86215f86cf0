"""The one place that reads the target and builds the resources for it.

Assets only ever see `portal` and `storage`; whether the zones are folders or S3 buckets is decided here,
from `Settings`, so the same assets, checks, sensors and schedules run on a laptop and on AWS.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import ConfigurableResource

from boston_lake.lake.bronze import ConverterSettings
from boston_lake.lake.catalog import Catalog
from boston_lake.lake.local_catalog import LocalCatalog
from boston_lake.lake.portal import CkanPortal, Log
from boston_lake.lake.query import DuckDBQueryEngine
from boston_lake.lake.registration import direct_crawl
from boston_lake.lake.settings import Settings
from boston_lake.lake.stores import LocalObjectStore, ObjectStore
from boston_lake.lake.tables import DATABASE


class CkanPortalResource(ConfigurableResource):
    """The CKAN portal that publishes the 311 data (data.boston.gov, or a mirror for tests and demos)."""

    base_url: str
    timeout_seconds: float = 60.0
    max_attempts: int = 5
    backoff_seconds: float = 1.0
    progress_interval_seconds: float = 10.0

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

    converter_memory_limit: str = "256MB"

    @abstractmethod
    def raw_zone(self) -> ObjectStore: ...

    @abstractmethod
    def lake_zone(self) -> ObjectStore: ...

    def converter_settings(self) -> ConverterSettings:
        return ConverterSettings(memory_limit=self.converter_memory_limit)


class LocalLakeStorage(LakeStorageResource):
    """Both zones as folders under BOSTON_LAKE_HOME: the embedded target, no account, nothing lost between runs."""

    home: str

    def raw_zone(self) -> ObjectStore:
        return LocalObjectStore(self.home)

    def lake_zone(self) -> ObjectStore:
        return LocalObjectStore(self.home)


class CatalogResource(ConfigurableResource):
    """The catalog the crawler keeps current, how a crawl runs, and the SQL engine that reads through it."""

    database: str = DATABASE

    @abstractmethod
    def catalog(self) -> Catalog: ...

    @abstractmethod
    def crawl(self, table: str, lake: ObjectStore, log: Log, landed_at: datetime) -> tuple[str, list[str]]:
        """Crawl one table's bronze prefix; returns the crawl's summary and any type conflicts it reported."""

    @abstractmethod
    def query(self, sql: str, lake: ObjectStore) -> pa.Table: ...


class LocalCatalogResource(CatalogResource):
    """Glue's data model in SQLite under BOSTON_LAKE_HOME, crawled by our crawler, queried with DuckDB."""

    home: str

    def catalog(self) -> Catalog:
        return LocalCatalog(Path(self.home) / "catalog" / "catalog.sqlite")

    def crawl(self, table: str, lake: ObjectStore, log: Log, landed_at: datetime) -> tuple[str, list[str]]:
        return direct_crawl(lake, self.catalog(), self.database, table, log)

    def query(self, sql: str, lake: ObjectStore) -> pa.Table:
        with DuckDBQueryEngine(self.catalog(), lake, self.database) as engine:
            return engine.query(sql)


def build_resources(settings: Settings) -> dict[str, Any]:
    portal = CkanPortalResource(base_url=settings.portal_url)
    if settings.target == "local":
        home = str(settings.home)
        return {"portal": portal, "storage": LocalLakeStorage(home=home), "catalog": LocalCatalogResource(home=home)}
    raise NotImplementedError(f"target {settings.target!r}")
