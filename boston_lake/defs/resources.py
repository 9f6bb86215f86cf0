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
from dagster_aws.s3 import S3Resource

from boston_lake.lake.athena import AthenaQueryEngine
from boston_lake.lake.aws import Backoff, boto3_client, drop_empty_endpoint_variables
from boston_lake.lake.bronze import ConverterSettings
from boston_lake.lake.catalog import Catalog
from boston_lake.lake.datastore import DEFAULT_PAGE_LIMIT
from boston_lake.lake.glue import GlueCatalog, run_managed_crawler
from boston_lake.lake.local_catalog import LocalCatalog
from boston_lake.lake.portal import CkanPortal, Log
from boston_lake.lake.query import DuckDBQueryEngine
from boston_lake.lake.registration import direct_crawl
from boston_lake.lake.s3 import S3ObjectStore, ServerSideEncryption
from boston_lake.lake.settings import DEFAULT_CRAWLER_NAME, Settings
from boston_lake.lake.stores import LocalObjectStore, ObjectStore
from boston_lake.lake.tables import DATABASE


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

    converter_memory_limit: str = ConverterSettings.memory_limit  # DuckDB's cap while converting to bronze

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


class S3LakeStorage(LakeStorageResource):
    """Both zones as S3 buckets, reached through dagster-aws's S3Resource; every object is encrypted at rest."""

    s3: S3Resource
    raw_bucket: str
    lake_bucket: str
    sse: str = "AES256"
    kms_key_id: str | None = None

    def _zone(self, bucket: str) -> S3ObjectStore:
        return S3ObjectStore(self.s3.get_client(), bucket, encryption=ServerSideEncryption(self.sse, self.kms_key_id))

    def raw_zone(self) -> ObjectStore:
        return self._zone(self.raw_bucket)

    def lake_zone(self) -> ObjectStore:
        return self._zone(self.lake_bucket)


class CatalogResource(ConfigurableResource):
    """The catalog the crawler keeps current, how a crawl runs, and the SQL engine that reads through it."""

    database: str = DATABASE

    @abstractmethod
    def catalog(self) -> Catalog: ...

    @abstractmethod
    def crawl(
        self, table: str, years: list[int], lake: ObjectStore, log: Log, landed_at: datetime
    ) -> tuple[str, list[str]]:
        """Crawl one table's bronze prefix, which holds `years` that landed by `landed_at`; returns the crawl's
        summary and any type conflicts it reported."""

    @abstractmethod
    def query(self, sql: str, lake: ObjectStore) -> pa.Table: ...


class LocalCatalogResource(CatalogResource):
    """Glue's data model in SQLite under BOSTON_LAKE_HOME, crawled by our crawler, queried with DuckDB."""

    home: str

    def catalog(self) -> Catalog:
        return LocalCatalog(Path(self.home) / "catalog" / "catalog.sqlite")

    def crawl(
        self, table: str, years: list[int], lake: ObjectStore, log: Log, landed_at: datetime
    ) -> tuple[str, list[str]]:
        return direct_crawl(lake, self.catalog(), self.database, table, log)

    def query(self, sql: str, lake: ObjectStore) -> pa.Table:
        with DuckDBQueryEngine(self.catalog(), lake, self.database) as engine:
            return engine.query(sql)


class GlueCatalogResource(CatalogResource):
    """The Glue Data Catalog, kept by our crawler through the Glue API (`direct`) or by the managed Glue
    crawler (`glue`); SQL runs on Athena."""

    s3: S3Resource
    region: str
    crawler_mode: str = "direct"
    crawler_name: str = DEFAULT_CRAWLER_NAME
    lock_bucket: str  # the lake bucket: direct crawls take a lease object there, so two never overlap
    athena_workgroup: str = "primary"
    athena_output: str
    crawl_timeout_seconds: float = 3600
    crawl_poll_seconds: float = 5.0  # first wait between status polls of a managed crawl; it doubles up to a minute

    def catalog(self) -> Catalog:
        return GlueCatalog(boto3_client("glue", self.region), S3ObjectStore(self.s3.get_client(), self.lock_bucket))

    def crawl(
        self, table: str, years: list[int], lake: ObjectStore, log: Log, landed_at: datetime
    ) -> tuple[str, list[str]]:
        if self.crawler_mode == "direct":
            return direct_crawl(lake, self.catalog(), self.database, table, log)
        result = run_managed_crawler(
            boto3_client("glue", self.region),
            self.crawler_name,
            requested_partitions={table: years},
            database=self.database,
            landed_at=landed_at,
            log=log,
            timeout_seconds=self.crawl_timeout_seconds,
            backoff=Backoff(initial_seconds=self.crawl_poll_seconds, factor=2, max_seconds=60),
        )
        return f"managed crawler {self.crawler_name}: crawl {result.crawl_id} {result.state}", []

    def query(self, sql: str, lake: ObjectStore) -> pa.Table:
        engine = AthenaQueryEngine(
            boto3_client("athena", self.region), self.database, self.athena_workgroup, self.athena_output
        )
        with engine:
            return engine.query(sql)


def build_resources(settings: Settings) -> dict[str, Any]:
    portal = CkanPortalResource(base_url=settings.portal_url, new_system_source=settings.new_system_source)
    if settings.aws is None:
        home = str(settings.home)
        return {"portal": portal, "storage": LocalLakeStorage(home=home), "catalog": LocalCatalogResource(home=home)}
    aws = settings.aws
    drop_empty_endpoint_variables()  # an exported-but-blank AWS_ENDPOINT_URL* must mean "the real AWS"
    s3 = S3Resource(region_name=aws.region)  # endpoint, profile and credentials: boto3's own variables and chain
    return {
        "portal": portal,
        "storage": S3LakeStorage(
            s3=s3, raw_bucket=aws.raw_bucket, lake_bucket=aws.lake_bucket, sse=aws.sse, kms_key_id=aws.kms_key_id
        ),
        "catalog": GlueCatalogResource(
            s3=s3,
            region=aws.region,
            database=aws.database,
            crawler_mode=aws.crawler_mode,
            crawler_name=aws.crawler_name,
            lock_bucket=aws.lake_bucket,
            athena_workgroup=aws.athena_workgroup,
            athena_output=aws.athena_output,
        ),
    }
