"""The one place that reads the target and builds the resources for it.

Assets only ever see `portal` and `storage`; whether the zones are folders or S3 buckets is decided here,
from `Settings`, so the same assets, checks, sensors and schedules run on a laptop and on AWS.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from dagster import ConfigurableResource

from boston_lake.lake.bronze import ConverterSettings
from boston_lake.lake.portal import CkanPortal, Log
from boston_lake.lake.settings import Settings
from boston_lake.lake.stores import LocalObjectStore, ObjectStore


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


def build_resources(settings: Settings) -> dict[str, Any]:
    portal = CkanPortalResource(base_url=settings.portal_url)
    if settings.target == "local":
        return {"portal": portal, "storage": LocalLakeStorage(home=str(settings.home))}
    raise NotImplementedError(f"target {settings.target!r}")
