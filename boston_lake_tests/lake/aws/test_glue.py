from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from boston_lake.lake.aws.glue import GlueCatalog
from boston_lake.lake.aws.glue_crawler import ManagedCrawlerError, run_managed_crawler
from boston_lake.lake.aws.s3 import S3ObjectStore
from boston_lake.lake.aws.session import Backoff
from boston_lake.lake.catalog import CatalogError, CrawlerRunning, EntityNotFound
from boston_lake_tests.support.moto_server import LakeBuckets, MotoServer

DB = "boston311"
CRAWLER = "boston311-bronze"
log = logging.getLogger("test_glue")


def table_input(name: str, columns: dict[str, str], *, partitioned: bool = True) -> dict[str, Any]:
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet"},
        "PartitionKeys": [{"Name": "year", "Type": "string"}] if partitioned else [],
        "StorageDescriptor": {
            "Columns": [{"Name": column, "Type": kind} for column, kind in columns.items()],
            "Location": f"s3://lake/bronze/{DB}/{name}/",
        },
    }


def partition_input(table: str, year: int | str, location_suffix: str = "") -> dict[str, Any]:
    return {
        "Values": [str(year)],
        "StorageDescriptor": {"Location": f"s3://lake/bronze/{DB}/{table}/year={year}/{location_suffix}"},
    }


@pytest.fixture
def glue(aws_client: Callable[[str], Any]) -> Any:
    return aws_client("glue")


@pytest.fixture
def catalog(glue: Any, aws_client: Callable[[str], Any], aws_buckets: LakeBuckets) -> GlueCatalog:
    created = GlueCatalog(glue, S3ObjectStore(aws_client("s3"), aws_buckets.lake))
    created.create_database(DB, "Boston 311")
    created.create_table(DB, table_input("legacy_requests", {"case_enquiry_id": "bigint"}))
    return created


def calls_to(client: Any, operation: str, parameter: str) -> list[Any]:
    """Record `parameter` of every `operation` request the client sends (botocore's event hooks, no mock)."""
    seen: list[Any] = []
    client.meta.events.register(
        f"provide-client-params.glue.{operation}", lambda params, **_: seen.append(params.get(parameter))
    )
    return seen


def test_partitions_are_created_in_batches_of_at_most_100(catalog: GlueCatalog, glue: Any):
    sent = calls_to(glue, "BatchCreatePartition", "PartitionInputList")
    catalog.batch_create_partitions(
        DB, "legacy_requests", [partition_input("legacy_requests", year) for year in range(1800, 2050)]
    )
    assert [len(batch) for batch in sent] == [100, 100, 50]
    assert len(catalog.get_partitions(DB, "legacy_requests")) == 250


def test_partitions_are_filtered_by_year_in_glue(catalog: GlueCatalog, glue: Any):
    catalog.batch_create_partitions(
        DB, "legacy_requests", [partition_input("legacy_requests", year) for year in range(2011, 2027)]
    )
    expressions = calls_to(glue, "GetPartitions", "Expression")
    found = catalog.get_partitions(DB, "legacy_requests", years=["2014", "2013", "2099"])
    assert sorted(partition["Values"] for partition in found) == [["2013"], ["2014"]]
    assert expressions == ["year IN ('2013', '2014', '2099')"]
    assert catalog.get_partitions(DB, "legacy_requests", years=[]) == []
    with pytest.raises(CatalogError, match="contains a quote"):
        catalog.get_partitions(DB, "legacy_requests", years=["2013') OR ('1'='1"])


def test_filtering_an_unpartitioned_table_by_year_is_an_error(catalog: GlueCatalog):
    catalog.create_table(DB, table_input("flat", {"a": "string"}, partitioned=False))
    with pytest.raises(CatalogError, match=r"boston311\.flat has no partition keys"):
        catalog.get_partitions(DB, "flat", years=["2013"])


def test_partitions_are_deleted_in_batches_of_at_most_25(catalog: GlueCatalog, glue: Any):
    catalog.batch_create_partitions(
        DB, "legacy_requests", [partition_input("legacy_requests", year) for year in range(1960, 2020)]
    )
    sent = calls_to(glue, "BatchDeletePartition", "PartitionsToDelete")
    catalog.batch_delete_partitions(DB, "legacy_requests", [[str(year)] for year in range(1960, 2015)])
    assert [len(batch) for batch in sent] == [25, 25, 5]
    assert sorted(p["Values"][0] for p in catalog.get_partitions(DB, "legacy_requests")) == [
        str(y) for y in range(2015, 2020)
    ]
    with pytest.raises(EntityNotFound, match=r"deleting partitions of boston311\.legacy_requests: \['1960'\]"):
        catalog.batch_delete_partitions(DB, "legacy_requests", [["1960"]])


def test_crawl_lock_admits_one_crawl_and_is_released(catalog: GlueCatalog, aws_client, aws_buckets: LakeBuckets):
    with catalog.crawl_lock(CRAWLER):
        keys = [item["Key"] for item in aws_client("s3").list_objects_v2(Bucket=aws_buckets.lake)["Contents"]]
        assert keys == [f"_locks/crawler/{CRAWLER}.json"]
        with pytest.raises(CrawlerRunning, match=rf"crawler '{CRAWLER}' is already crawling glue://us-east-1"):
            with catalog.crawl_lock(CRAWLER):
                pass
        with catalog.crawl_lock("another-crawler"):
            pass
    with catalog.crawl_lock(CRAWLER):
        pass


# --- the managed crawler -------------------------------------------------------------------------------


class FakeTime:
    """The runner's clock and sleep: each sleep moves time on and lets the test act as the passing time."""

    def __init__(self, on_sleep: Callable[[int], None]):
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        self.on_sleep(self.sleeps)


@pytest.fixture
def crawler(catalog: GlueCatalog, glue: Any, aws_env: MotoServer, aws_buckets: LakeBuckets) -> str:
    glue.create_crawler(
        Name=CRAWLER,
        Role="arn:aws:iam::123456789012:role/boston-lake-glue",
        DatabaseName=DB,
        Targets={"S3Targets": [{"Path": f"s3://{aws_buckets.lake}/bronze/{DB}/legacy_requests/"}]},
    )
    # moto never crawls: a crawl is RUNNING until `list_crawls` has seen it twice, then COMPLETED.
    aws_env.set_transition("glue::crawl", {"progression": "manual", "times": 2})
    return CRAWLER


def crawl_passes_time(glue: Any, catalog: GlueCatalog, registers: list[int]) -> Callable[[int], None]:
    """What happens while the runner sleeps: moto's crawl moves on, and on the first sleep the 'crawl'
    registers `registers` in the catalog, as the real crawler would."""

    def on_sleep(count: int) -> None:
        if count == 1 and registers:
            catalog.batch_create_partitions(
                DB, "legacy_requests", [partition_input("legacy_requests", y) for y in registers]
            )
        glue.list_crawls(CrawlerName=CRAWLER)

    return on_sleep


def run(glue: Any, time: FakeTime, *, landed_at: datetime | None = None, years=(2013, 2022), timeout: float = 600):
    return run_managed_crawler(
        glue,
        CRAWLER,
        requested_partitions={"legacy_requests": list(years)},
        database=DB,
        landed_at=landed_at or datetime.now(UTC),
        log=log,
        timeout_seconds=timeout,
        backoff=Backoff(initial_seconds=5, factor=2, max_seconds=60),
        clock=time.clock,
        sleep=time.sleep,
    )


def crawl_ids(glue: Any) -> list[str]:
    crawls = sorted(glue.list_crawls(CrawlerName=CRAWLER)["Crawls"], key=lambda crawl: crawl["StartTime"])
    return [crawl["CrawlId"] for crawl in crawls]


def test_a_crawl_is_started_waited_for_and_its_partitions_verified(glue, catalog, crawler):
    time = FakeTime(crawl_passes_time(glue, catalog, [2013, 2022]))
    result = run(glue, time)
    assert result.state == "COMPLETED" and result.started_by_us
    assert result.partitions_verified == {"legacy_requests": ["2013", "2022"]}
    assert crawl_ids(glue) == [result.crawl_id]
    assert result.ended_at is not None and result.ended_at >= result.started_at
    assert time.sleeps == 2 and time.now == 5 + 10  # backoff 5 s, then 10 s


def test_a_crawl_already_running_from_before_our_data_landed_is_waited_out_then_run_again(glue, catalog, crawler):
    glue.start_crawler(Name=CRAWLER)
    earlier_crawl = crawl_ids(glue)  # moto: this look counts as one of the two the crawl needs
    time = FakeTime(crawl_passes_time(glue, catalog, [2013, 2022]))
    result = run(glue, time, landed_at=datetime.now(UTC))
    assert result.started_by_us
    assert crawl_ids(glue) == [*earlier_crawl, result.crawl_id]
    assert result.partitions_verified == {"legacy_requests": ["2013", "2022"]}


def test_a_crawl_already_running_that_began_after_our_data_landed_is_adopted(glue, catalog, crawler):
    glue.start_crawler(Name=CRAWLER)
    time = FakeTime(crawl_passes_time(glue, catalog, [2013, 2022]))
    result = run(glue, time, landed_at=datetime.now(UTC) - timedelta(hours=1))
    assert not result.started_by_us
    assert crawl_ids(glue) == [result.crawl_id]


def test_a_completed_crawl_that_began_after_our_data_landed_covers_it_without_a_new_crawl(glue, catalog, crawler):
    # Two tables landed in one tick: the first table's crawl ran (the crawler crawls every table) ...
    landed_at = datetime.now(UTC) - timedelta(hours=1)
    first = run(glue, FakeTime(crawl_passes_time(glue, catalog, [2013, 2022])), landed_at=landed_at)
    assert first.started_by_us and first.state == "COMPLETED"
    # ... so the second table's crawl run, which waited behind it in the pool, starts none and proves its years.
    second = run(glue, FakeTime(crawl_passes_time(glue, catalog, [])), landed_at=landed_at)
    assert not second.started_by_us and second.crawl_id == first.crawl_id
    assert crawl_ids(glue) == [first.crawl_id]
    assert second.partitions_verified == {"legacy_requests": ["2013", "2022"]}


def test_a_crawl_that_never_finishes_times_out_naming_the_crawler_and_the_wait(glue, catalog, crawler):
    time = FakeTime(lambda count: None)  # time passes, the crawl never moves on
    with pytest.raises(ManagedCrawlerError, match=rf"crawler '{CRAWLER}' to finish \(it is RUNNING\) after 600 s"):
        run(glue, time, timeout=600)
    assert time.now == 600


def test_a_failed_crawl_surfaces_glue_error_message_and_log_location(glue, catalog, crawler, aws_env: MotoServer):
    time = FakeTime(lambda count: aws_env.fail_latest_crawl(CRAWLER, "Internal Service Exception"))
    with pytest.raises(ManagedCrawlerError) as failure:
        run(glue, time)
    message = str(failure.value)
    assert "ended FAILED: Internal Service Exception" in message
    assert f"CloudWatch group /aws-glue/crawlers, stream {CRAWLER}" in message


def test_a_stopped_crawl_is_reported_as_not_finished(glue, catalog, crawler):
    def stop_then_pass(count: int) -> None:
        if count == 1:
            glue.stop_crawler(Name=CRAWLER)
        glue.list_crawls(CrawlerName=CRAWLER)

    with pytest.raises(ManagedCrawlerError, match=r"was stopped before it finished: Glue gave no error message"):
        run(glue, FakeTime(stop_then_pass))


def test_a_completed_crawl_that_missed_partitions_fails_naming_them(glue, catalog, crawler):
    time = FakeTime(crawl_passes_time(glue, catalog, [2013]))
    with pytest.raises(ManagedCrawlerError) as failure:
        run_managed_crawler(
            glue,
            CRAWLER,
            requested_partitions={"legacy_requests": [2013, 2022], "new_system_requests": [2025]},
            database=DB,
            landed_at=datetime.now(UTC),
            log=log,
            clock=time.clock,
            sleep=time.sleep,
        )
    message = str(failure.value)
    assert "completed but did not register boston311.legacy_requests partitions ['2022']" in message
    assert "boston311.new_system_requests (no such table)" in message


def test_a_crawler_that_does_not_exist_cannot_be_started(glue, catalog):
    with pytest.raises(
        ManagedCrawlerError, match=r"could not start crawler 'boston311-bronze': .*EntityNotFoundException"
    ):
        run(glue, FakeTime(lambda count: None))


def test_landed_at_must_carry_a_timezone(glue):
    with pytest.raises(ValueError, match="timezone-aware"):
        run(glue, FakeTime(lambda count: None), landed_at=datetime(2026, 1, 1))


def test_an_aws_error_keeps_its_cause_and_names_the_request(catalog: GlueCatalog):
    with pytest.raises(EntityNotFound, match=r"EntityNotFoundException: .*\(request id [\w-]+\)") as raised:
        catalog.delete_table(DB, "missing")
    assert isinstance(raised.value.__cause__, ClientError)
