"""A run of the managed Glue crawler, seen to its end and proven: the crawl must cover data that landed
before it, end COMPLETED, and leave every requested partition registered."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from boston_lake.lake.aws.glue import GlueApi
from boston_lake.lake.aws.session import Backoff, Poller, WaitTimedOut, describe_error, error_code
from boston_lake.lake.catalog import CatalogError, EntityNotFound, GlueDict
from boston_lake.lake.log import Log

# Crawl start times come from AWS's clock, `landed_at` from ours: a crawl that began less than this after
# our data landed may not have seen it, so it does not count as covering it.
CLOCK_SKEW_ALLOWANCE = timedelta(seconds=30)
# A crawl takes minutes: first look after 5 s, then ever less often, at least once a minute.
CRAWL_POLLING = Backoff(initial_seconds=5, factor=2, max_seconds=60)


class ManagedCrawlerError(CatalogError):
    """The managed Glue crawler could not start, failed, timed out, or left partitions unregistered."""


@dataclass(frozen=True)
class ManagedCrawl:
    """One crawl of the managed crawler, as Glue reported it once it ended."""

    crawler: str
    crawl_id: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    started_by_us: bool
    partitions_verified: dict[str, list[str]]


def run_managed_crawler(
    glue_client: Any,
    crawler_name: str,
    *,
    requested_partitions: Mapping[str, Iterable[str | int]],
    database: str,
    landed_at: datetime,
    log: Log,
    timeout_seconds: float = 3600,
    backoff: Backoff = CRAWL_POLLING,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ManagedCrawl:
    """Run the crawler so that it sees data that landed at `landed_at`, wait for it, and prove the result.

    A crawl already running when we ask is waited for; it counts as ours only if it began after our data
    landed, otherwise the crawler is started again once it is free. Success means Glue says COMPLETED *and*
    every requested partition is registered: a crawler that excluded or misread a folder still "succeeds".
    """
    if landed_at.tzinfo is None:
        raise ValueError(f"landed_at must be timezone-aware, got {landed_at!r}")
    api = GlueApi(glue_client)
    poller = Poller(timeout_seconds, backoff, clock=clock, sleep=sleep)
    started_by_us = _start_crawl(api, crawler_name, landed_at, poller, log)
    _wait_until_ready(api, crawler_name, poller)
    crawl = _latest_crawl(api, crawler_name)
    if crawl["State"] != "COMPLETED":
        outcome = "was stopped before it finished" if crawl["State"] == "STOPPED" else f"ended {crawl['State']}"
        raise ManagedCrawlerError(
            f"crawler {crawler_name!r}, crawl {crawl.get('CrawlId')}, {outcome}: "
            f"{crawl.get('ErrorMessage') or 'Glue gave no error message'}; "
            f"its log is CloudWatch group {crawl.get('LogGroup')}, stream {crawl.get('LogStream')}"
        )
    verified = _verify_partitions(api, crawler_name, crawl, database, requested_partitions)
    log.info("crawler %s: crawl %s completed and registered %s", crawler_name, crawl["CrawlId"], verified)
    return ManagedCrawl(
        crawler=crawler_name,
        crawl_id=crawl["CrawlId"],
        state=crawl["State"],
        started_at=crawl["StartTime"],
        ended_at=crawl.get("EndTime"),
        started_by_us=started_by_us,
        partitions_verified=verified,
    )


def _start_crawl(api: GlueApi, name: str, landed_at: datetime, poller: Poller, log: Log) -> bool:
    """Start a crawl that begins after `landed_at`; False when a crawl that did is adopted instead: a running
    one, or one that already completed. The crawler crawls every table, so when several tables land in one
    sensor tick, the first table's crawl covers the others and they start none (one billed crawl per tick)."""
    try:
        done = _crawls(api, name, [{"FieldName": "STATE", "FilterOperator": "EQ", "FieldValue": "COMPLETED"}])
    except EntityNotFound as error:
        raise ManagedCrawlerError(f"could not start crawler {name!r}: {error}") from error
    latest = max(done, key=lambda crawl: crawl["StartTime"], default=None)
    if latest is not None and latest["StartTime"] >= landed_at + CLOCK_SKEW_ALLOWANCE:
        log.info(
            "crawler %s: crawl %s began %s, after our partitions landed at %s, so it covers them: no new crawl",
            name,
            latest.get("CrawlId"),
            latest["StartTime"],
            landed_at,
        )
        return False
    while True:
        try:
            api.client.start_crawler(Name=name)
        except ClientError as error:
            if error_code(error) != "CrawlerRunningException":
                raise ManagedCrawlerError(f"could not start crawler {name!r}: {describe_error(error)}") from error
        else:
            log.info("crawler %s started", name)
            return True
        running = _running_crawl(api, name)
        began = running["StartTime"] if running else None
        covers_us = began is not None and began >= landed_at + CLOCK_SKEW_ALLOWANCE
        log.info(
            "crawler %s is already running (crawl %s, began %s); our partitions landed at %s, so %s",
            name,
            running.get("CrawlId") if running else "unknown",
            began,
            landed_at,
            "that crawl will do" if covers_us else "it will be started again once it is free",
        )
        _wait_until_ready(api, name, poller)
        if covers_us:
            return False


def _wait_until_ready(api: GlueApi, name: str, poller: Poller) -> None:
    while True:
        state = api.call(f"reading crawler {name}", "get_crawler", Name=name)["Crawler"]["State"]
        if state == "READY":
            return
        try:
            poller.pause(f"crawler {name!r} to finish (it is {state})")
        except WaitTimedOut as timeout:
            raise ManagedCrawlerError(
                f"{timeout}; the crawl goes on in Glue: see the crawler's runs and its CloudWatch log group "
                "/aws-glue/crawlers"
            ) from timeout


def _crawls(api: GlueApi, name: str, filters: list[GlueDict]) -> list[GlueDict]:
    """Every crawl in the crawler's history (ListCrawls has no paginator in botocore)."""
    crawls: list[GlueDict] = []
    token: dict[str, str] = {}
    while True:
        page = api.call(f"listing crawls of crawler {name}", "list_crawls", CrawlerName=name, Filters=filters, **token)
        crawls.extend(page.get("Crawls", []))
        if not page.get("NextToken"):
            return crawls
        token = {"NextToken": page["NextToken"]}


def _running_crawl(api: GlueApi, name: str) -> GlueDict | None:
    running = _crawls(api, name, [{"FieldName": "STATE", "FilterOperator": "EQ", "FieldValue": "RUNNING"}])
    return max(running, key=lambda crawl: crawl["StartTime"], default=None)


def _latest_crawl(api: GlueApi, name: str) -> GlueDict:
    latest = max(_crawls(api, name, []), key=lambda crawl: crawl["StartTime"], default=None)
    if latest is None:
        raise ManagedCrawlerError(f"crawler {name!r} is READY but Glue lists no crawl of it")
    return latest


def _verify_partitions(
    api: GlueApi, name: str, crawl: GlueDict, database: str, requested: Mapping[str, Iterable[str | int]]
) -> dict[str, list[str]]:
    verified: dict[str, list[str]] = {}
    missing: list[str] = []
    for table, years in requested.items():
        wanted = sorted({str(year) for year in years})
        try:
            found = {partition["Values"][0] for partition in api.partitions(database, table, wanted)}
        except EntityNotFound:
            missing.append(f"{database}.{table} (no such table)")
            continue
        verified[table] = [year for year in wanted if year in found]
        absent = [year for year in wanted if year not in found]
        if absent:
            missing.append(f"{database}.{table} partitions {absent}")
    if missing:
        raise ManagedCrawlerError(
            f"crawler {name!r}, crawl {crawl['CrawlId']}, completed but did not register {'; '.join(missing)}: "
            f"check the crawler's targets and exclusions, and its log (CloudWatch group {crawl.get('LogGroup')}, "
            f"stream {crawl.get('LogStream')})"
        )
    return verified
