"""The plain core objects of one target, built from Settings: zones, catalog, crawler and query engine.

Both the Dagster resources (defs/resources.py wraps a target) and the `boston-lake` command use these, so
the choice of target lives below Dagster: `boston-lake status` needs neither Dagster nor dagster-aws. Each
object is built when first asked for, so a command that only reads the zones never opens the catalog.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from boston_lake.lake.aws.athena import AthenaQueryEngine
from boston_lake.lake.aws.glue import GlueCatalog
from boston_lake.lake.aws.glue_crawler import run_managed_crawler
from boston_lake.lake.aws.s3 import S3ObjectStore, ServerSideEncryption
from boston_lake.lake.aws.session import AwsSession, Backoff
from boston_lake.lake.catalog import Catalog
from boston_lake.lake.catalog.iceberg import IcebergTables, retire_hive_table
from boston_lake.lake.catalog.iceberg_plans import IcebergError, IndexedPlans, SnapshotFiles, TimeTravel
from boston_lake.lake.catalog.local import LocalCatalog
from boston_lake.lake.catalog.registration import direct_crawl
from boston_lake.lake.log import Log
from boston_lake.lake.query.engine import DuckDBQueryEngine
from boston_lake.lake.settings import AwsSettings, Settings
from boston_lake.lake.stores import LocalObjectStore, ObjectStore
from boston_lake.lake.tables import DATABASE
from boston_lake.lake.zones.silver.glue_build import GlueSilverJob


class QueryEngine(Protocol):
    """What `boston-lake query` and `open_lake` ask of an engine (DuckDB locally, Athena on AWS)."""

    def query(self, sql: str) -> pa.Table: ...

    def close(self) -> None: ...


# Whether the run named in a claim (its lease record: run_id, host, pid…) has ended, as the orchestrator knows.
HolderEnded = Callable[[Mapping[str, Any]], bool]

ICEBERG_CATALOG = "boston_lake"
ICEBERG_CATALOG_FILE = "iceberg.sqlite"
SNAPSHOT_INDEX_FILE = "iceberg_files.sqlite"
DUCKDB = "duckdb"
GLUE = "glue"


@dataclass(frozen=True)
class GlueJobLauncher:
    """What launching the silver Glue job needs: the job, and the clients of the run (Glue, and S3 for the
    pipes context and messages under the lake bucket's `_pipes/`)."""

    job: GlueSilverJob
    glue: Any
    s3: Any


class LakeTarget(ABC):
    """Where the lake lives and how it is catalogued and queried; the same calls on every target."""

    database: str
    # The engine of silver: DuckDB in this process, or the Glue job (then `silver_glue_job` says which).
    silver_engine: str = DUCKDB

    def silver_glue_job(self) -> GlueJobLauncher:
        raise NotImplementedError(f"{self!r} builds silver with {self.silver_engine}, not a Glue job")

    @abstractmethod
    def raw_zone(self, run_id: str | None = None, holder_ended: HolderEnded | None = None) -> ObjectStore:
        """The downloads as they came; `run_id` (e.g. Dagster's) names the run in the claims it takes, and
        `holder_ended` says whether the run named in another's claim has ended (its claim is then taken over)."""

    @abstractmethod
    def lake_zone(self, run_id: str | None = None, holder_ended: HolderEnded | None = None) -> ObjectStore:
        """bronze/ and silver/; `run_id` and `holder_ended` as for `raw_zone`."""

    @abstractmethod
    def catalog(self, read_only: bool = False) -> Catalog:
        """The catalog; `read_only` for readers, which must never wait behind a crawl."""

    @abstractmethod
    def crawl(self, table: str, years: list[int], log: Log, landed_at: datetime) -> tuple[str, list[str]]:
        """Crawl one table's bronze prefix, which holds `years` that landed by `landed_at`; returns the crawl's
        summary and any type conflicts it reported."""

    @abstractmethod
    def query_engine(self, **options: Any) -> QueryEngine:
        """The engine of `boston-lake query` and `open_lake`: SQL over the catalog's tables. `options` go to the
        engine as they are, so an option an engine gains reaches every caller (e.g. `travel`: silver and gold as
        they were)."""

    def query(self, sql: str, travel: TimeTravel | None = None) -> pa.Table:
        """SQL over the catalog's tables, with an engine opened for it alone; silver and gold as `travel` asks."""
        with closing(self.query_engine(**({"travel": travel} if travel is not None else {}))) as engine:
            return engine.query(sql)

    def iceberg_reader(self) -> IcebergTables | None:
        """The Iceberg tables for a reader, which never writes; None when there are none yet."""
        return self.iceberg()

    @abstractmethod
    def iceberg(self, run_id: str | None = None, holder_ended: HolderEnded | None = None) -> IcebergTables:
        """The Iceberg tables (silver, gold) in the target's Iceberg catalog, over `lake_zone(run_id, holder_ended)`."""

    def _retire(self, name: str) -> None:
        retire_hive_table(self.catalog(), self.database, name)


class LocalTarget(LakeTarget):
    """Both zones as folders under one home, Glue's data model in SQLite there, our crawler, DuckDB."""

    def __init__(self, home: Path, database: str = DATABASE):
        self.home = home
        self.database = database

    def __repr__(self) -> str:
        return f"LocalTarget({str(self.home)!r})"

    def raw_zone(self, run_id: str | None = None, holder_ended: HolderEnded | None = None) -> ObjectStore:
        return LocalObjectStore(self.home)  # its claims are flocks, which the kernel frees when a holder dies

    def lake_zone(self, run_id: str | None = None, holder_ended: HolderEnded | None = None) -> ObjectStore:
        return LocalObjectStore(self.home)

    def catalog(self, read_only: bool = False) -> Catalog:
        return LocalCatalog(self.home / "catalog" / "catalog.sqlite", read_only=read_only)

    def crawl(self, table: str, years: list[int], log: Log, landed_at: datetime) -> tuple[str, list[str]]:
        return direct_crawl(self.lake_zone(), self.catalog(), self.database, table, log)

    def query_engine(self, **options: Any) -> QueryEngine:
        """DuckDB over the catalog; silver and gold planned from the snapshot index, pyiceberg loaded only for what
        it lacks."""
        plans = None
        if self._iceberg_catalog_file.is_file():
            plans = IndexedPlans(
                self._iceberg_catalog_file,
                ICEBERG_CATALOG,
                self.lake_zone(),
                self.database,
                self._snapshot_files,
                self._iceberg_reader,
            )
        return DuckDBQueryEngine(
            self.catalog(read_only=True), self.lake_zone(), self.database, iceberg=plans, **options
        )

    def iceberg(self, run_id: str | None = None, holder_ended: HolderEnded | None = None) -> IcebergTables:
        """pyiceberg's SQL catalog on SQLite beside the Glue-shaped one; the warehouse is the lake folder. Each commit
        records its snapshot's files in the index readers plan from."""
        from pyiceberg.catalog.sql import SqlCatalog

        self._iceberg_catalog_file.parent.mkdir(parents=True, exist_ok=True)
        catalog = SqlCatalog(ICEBERG_CATALOG, uri=f"sqlite:///{self._iceberg_catalog_file}", warehouse=self._warehouse)
        return IcebergTables(
            catalog,
            self.lake_zone(run_id, holder_ended),
            self.database,
            retire=self._retire,
            index=self._snapshot_files,
        )

    def iceberg_reader(self) -> IcebergTables | None:
        """The Iceberg tables opened read-only (a reader never writes the lake, which may be read-only to it); None
        when no run has created any yet."""
        if not self._iceberg_catalog_file.is_file():
            return None
        return self._iceberg_reader()

    def _iceberg_reader(self) -> IcebergTables:
        from pyiceberg.catalog.sql import SqlCatalog

        path = self._iceberg_catalog_file
        catalog = SqlCatalog(ICEBERG_CATALOG, uri=f"sqlite:///file:{path}?mode=ro&uri=true", warehouse=self._warehouse)
        return IcebergTables(catalog, self.lake_zone(), self.database, read_only=True)

    @property
    def _snapshot_files(self) -> SnapshotFiles:
        return SnapshotFiles(self.home / "catalog" / SNAPSHOT_INDEX_FILE)

    @property
    def _iceberg_catalog_file(self) -> Path:
        return self.home / "catalog" / ICEBERG_CATALOG_FILE

    @property
    def _warehouse(self) -> str:
        return self.home.resolve().as_uri()


class AwsTarget(LakeTarget):
    """S3 buckets, the Glue Data Catalog kept by our crawler (`direct`) or the managed one (`glue`), Athena;
    every client comes from one AwsSession. Silver runs as the Glue job `provision` creates."""

    silver_engine = GLUE

    def __init__(
        self,
        aws: AwsSettings,
        session: AwsSession | None = None,
        *,
        crawl_timeout_seconds: float = 3600,
        crawl_poll_seconds: float = 5.0,  # first wait between polls of a managed crawl; it doubles up to a minute
        glue_job_client: Any = None,  # the client that starts and watches job runs; the session's Glue client
    ):
        self.aws = aws
        self.database = aws.database
        self.session = session or AwsSession.from_settings(aws)
        self.crawl_timeout_seconds = crawl_timeout_seconds
        self.crawl_poll_seconds = crawl_poll_seconds
        self.glue_job_client = glue_job_client

    def __repr__(self) -> str:
        return f"AwsTarget(raw={self.aws.raw_bucket!r}, lake={self.aws.lake_bucket!r}, region={self.aws.region!r})"

    def _zone(self, bucket: str, run_id: str | None, holder_ended: HolderEnded | None) -> S3ObjectStore:
        return S3ObjectStore(
            self.session.client("s3"),
            bucket,
            run_id=run_id,
            holder_ended=holder_ended,
            encryption=ServerSideEncryption(self.aws.sse, self.aws.kms_key_id),
            credentials=self.session.credentials(),
        )

    def raw_zone(self, run_id: str | None = None, holder_ended: HolderEnded | None = None) -> ObjectStore:
        return self._zone(self.aws.raw_bucket, run_id, holder_ended)

    def lake_zone(self, run_id: str | None = None, holder_ended: HolderEnded | None = None) -> ObjectStore:
        return self._zone(self.aws.lake_bucket, run_id, holder_ended)

    @cached_property
    def _glue_catalog(self) -> GlueCatalog:
        # Direct crawls take a lease object in the lake bucket, so two never overlap.
        return GlueCatalog(self.session.client("glue"), self._zone(self.aws.lake_bucket, None, None))

    def catalog(self, read_only: bool = False) -> Catalog:
        return self._glue_catalog  # Glue's reads never wait behind a writer

    def crawl(self, table: str, years: list[int], log: Log, landed_at: datetime) -> tuple[str, list[str]]:
        if self.aws.crawler_mode == "direct":
            return direct_crawl(self.lake_zone(), self.catalog(), self.database, table, log)
        result = run_managed_crawler(
            self.session.client("glue"),
            self.aws.crawler_name,
            requested_partitions={table: years},
            database=self.database,
            landed_at=landed_at,
            log=log,
            timeout_seconds=self.crawl_timeout_seconds,
            backoff=Backoff(initial_seconds=self.crawl_poll_seconds, factor=2, max_seconds=60),
        )
        return f"managed crawler {result.crawler}: crawl {result.crawl_id} {result.state}", []

    def silver_glue_job(self) -> GlueJobLauncher:
        job = GlueSilverJob(
            name=self.aws.silver_job_name, code_bucket=self.aws.code_bucket, lake_bucket=self.aws.lake_bucket
        )
        glue = self.glue_job_client or self.session.client("glue")
        return GlueJobLauncher(job=job, glue=glue, s3=self.session.client("s3"))

    def iceberg(self, run_id: str | None = None, holder_ended: HolderEnded | None = None) -> IcebergTables:
        """pyiceberg's Glue catalog: the tables live in the Glue database Athena reads, data and metadata in the lake
        bucket, through the session's clients and endpoints."""
        lake = self._zone(self.aws.lake_bucket, run_id, holder_ended)
        properties = {"s3.region": self.aws.region}
        endpoint = self.session.endpoint("s3")
        if endpoint:
            properties["s3.endpoint"] = endpoint
        credentials = self.session.credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            properties |= {"s3.access-key-id": frozen.access_key, "s3.secret-access-key": frozen.secret_key}
            if frozen.token:
                properties["s3.session-token"] = frozen.token
        from pyiceberg.catalog.glue import GlueCatalog as PyIcebergGlueCatalog

        catalog = PyIcebergGlueCatalog(ICEBERG_CATALOG, client=self.session.client("glue"), **properties)
        return IcebergTables(catalog, lake, self.database, retire=self._retire)

    def query_engine(self, **options: Any) -> QueryEngine:
        travel = options.pop("travel", None)
        if travel is not None and travel != TimeTravel():
            raise IcebergError(
                "on the aws target, time travel is Athena's own SQL: SELECT … FROM boston311.service_requests "
                "FOR TIMESTAMP AS OF TIMESTAMP '2026-08-20 12:00:00 UTC' (or FOR VERSION AS OF <snapshot id>)"
            )
        return AthenaQueryEngine(
            self.session.client("athena"), self.database, self.aws.athena_workgroup, self.aws.athena_output, **options
        )


def build_target(settings: Settings) -> LakeTarget:
    """The target BOSTON_LAKE_TARGET names, configured from the rest of the settings."""
    if settings.aws is None:
        return LocalTarget(settings.home)
    return AwsTarget(settings.aws)
