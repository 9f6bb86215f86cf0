"""The manifest kept beside every raw object: where it came from and what it holds.

It pins the portal resource by id, carries the server's validators for conditional requests, and records
the data-row count that bronze must reconcile with.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from boston_lake.lake.source.csvscan import CsvProfile, RecordLocation
from boston_lake.lake.source.portal import Download, PortalResource, Validators
from boston_lake.lake.stores import ObjectNotFound, ObjectStore, StoreError

VERSION = 1
CSV = "csv"
JSON_LINES = "jsonl"


def served_as(resource: PortalResource, download: Download) -> dict[str, Any]:
    """The manifest's fields that say under which resource and validators the portal served the bytes."""
    return {
        "resource_id": resource.id,
        "resource_name": resource.name,
        "source_url": download.url,
        "ckan_last_modified": resource.last_modified,
        "ckan_hash": resource.hash,
        "etag": download.etag,
        "http_last_modified": download.last_modified,
    }


@dataclass(frozen=True)
class RawManifest:
    table: str
    year: int | None  # None for the whole download of a source that is split into years
    key: str
    bytes: int
    sha256: str
    data_rows: int
    header: list[str]
    resource_id: str
    resource_name: str
    source_url: str
    ckan_last_modified: str | None
    ckan_hash: str | None
    etag: str | None
    http_last_modified: str | None
    downloaded_at: str
    invalid_utf8_rows: int = 0
    invalid_utf8_locations: list[dict[str, int]] = field(default_factory=list)
    source_key: str | None = None  # split partitions: the download they were cut from
    source_sha256: str | None = None
    format: str = CSV  # CSV, or JSON_LINES for a year cut from DataStore pages
    version: int = VERSION

    @classmethod
    def build(
        cls,
        *,
        table: str,
        year: int | None,
        key: str,
        size: int,
        sha256: str,
        profile: CsvProfile,
        resource: PortalResource,
        download: Download,
        downloaded_at: str,
        source: RawManifest | None = None,
    ) -> RawManifest:
        return cls(
            table=table,
            year=year,
            key=key,
            bytes=size,
            sha256=sha256,
            data_rows=profile.data_rows,
            header=profile.header,
            **served_as(resource, download),
            downloaded_at=downloaded_at,
            invalid_utf8_rows=profile.invalid_utf8_rows,
            invalid_utf8_locations=[asdict(loc) for loc in profile.invalid_utf8_locations],
            source_key=source.key if source else None,
            source_sha256=source.sha256 if source else None,
        )

    @property
    def validators(self) -> Validators:
        return Validators(etag=self.etag, last_modified=self.http_last_modified)

    def describes(self, resource: PortalResource) -> bool:
        """True when the portal's own metadata says the resource has not changed since this download."""
        return (
            self.resource_id == resource.id
            and self.ckan_last_modified == resource.last_modified
            and self.ckan_hash == resource.hash
        )

    def vouched_for_by(self, resource: PortalResource) -> bool:
        """True when the portal's package metadata alone says the resource holds the stored bytes: the same resource,
        last_modified and hash as at this download (at least one of the two given, since CKAN changes them with
        every upload), and the listed size, when listed, the stored size. Then there is nothing to ask the server."""
        return (
            self.describes(resource)
            and bool(resource.last_modified or resource.hash)
            and resource.size in (None, self.bytes)
        )

    def repinned(self, resource: PortalResource, download: Download) -> RawManifest:
        """This manifest for the same bytes served under `resource` and `download`'s validators: after a rename
        of the resource or a change of its metadata alone, later runs ask conditionally again."""
        return replace(self, **served_as(resource, download))

    def invalid_locations(self) -> list[RecordLocation]:
        return [RecordLocation(**loc) for loc in self.invalid_utf8_locations]

    def to_json(self) -> builtins.bytes:  # `bytes` alone is the field of that name here
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: builtins.bytes, where: str) -> RawManifest:
        try:
            raw: dict[str, Any] = json.loads(data)
            return cls(**raw)
        except (ValueError, TypeError) as error:
            raise StoreError(f"manifest {where} is unreadable: {error}") from error


def read_manifest(store: ObjectStore, key: str) -> RawManifest | None:
    try:
        data = store.get_bytes(key)
    except ObjectNotFound:
        return None
    return RawManifest.from_json(data, store.uri(key))
