from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from boston_lake.lake.aws.s3 import WORK_LEASE_TTL_SECONDS, LockHeld, S3ObjectStore, ServerSideEncryption
from boston_lake.lake.aws.session import AwsSession, Backoff
from boston_lake.lake.stores import LocalObjectStore, ObjectNotFound, ObjectStore, StoreError, WorkBusy
from boston_lake.lake.tables import LEGACY_REQUESTS
from boston_lake.lake.zones.bronze import convert_csv
from boston_lake.sample_portal.server import DATA_DIR
from boston_lake_tests.support.moto_server import REGION, LakeBuckets
from boston_lake_tests.support.s3_faults import S3Proxy, delete_as_pasted

MIB = 1024 * 1024
# s3transfer never makes parts smaller than S3's 5 MiB minimum, so "multipart" means two parts of a 6 MiB file.
SMALL_PARTS = TransferConfig(multipart_threshold=1 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)


@pytest.fixture(params=["local", "s3", "s3-prefixed"])
def store(request, tmp_path: Path) -> ObjectStore:
    """The same contract over the local reference store and the S3 store, with and without a key prefix."""
    if request.param == "local":
        return LocalObjectStore(tmp_path / "zone")
    client = request.getfixturevalue("aws_client")("s3")
    buckets: LakeBuckets = request.getfixturevalue("aws_buckets")
    return S3ObjectStore(client, buckets.lake, "zone/" if request.param == "s3-prefixed" else "")


@pytest.fixture
def s3_store(aws_client: Callable[[str], Any], aws_buckets: LakeBuckets) -> S3ObjectStore:
    return S3ObjectStore(aws_client("s3"), aws_buckets.lake, transfer=SMALL_PARTS)


def test_bytes_round_trip_exists_and_delete(store: ObjectStore):
    assert not store.exists("bronze/t/year=2013/part.parquet")
    store.put_bytes("bronze/t/year=2013/part.parquet", b"first")
    store.put_bytes("bronze/t/year=2013/part.parquet", b"second")
    assert store.exists("bronze/t/year=2013/part.parquet")
    assert store.get_bytes("bronze/t/year=2013/part.parquet") == b"second"
    store.delete("bronze/t/year=2013/part.parquet")
    store.delete("bronze/t/year=2013/part.parquet")  # deleting what is gone is not an error
    assert not store.exists("bronze/t/year=2013/part.parquet")


def test_list_is_recursive_relative_and_by_prefix(store: ObjectStore):
    for key in (
        "raw/t/year=2013/a.csv",
        "raw/t/year=2013/_manifest.json",
        "raw/t/year=2014/b.csv",
        "raw/tt/c.csv",
        "other/d",
    ):
        store.put_bytes(key, key.encode())
    listed = {item.key: item.size for item in store.list("raw/t/")}
    assert listed == {
        key: len(key) for key in ("raw/t/year=2013/a.csv", "raw/t/year=2013/_manifest.json", "raw/t/year=2014/b.csv")
    }
    assert [item.key for item in store.list("raw/t/year=2013/a")] == ["raw/t/year=2013/a.csv"]
    assert all(item.last_modified.tzinfo is not None for item in store.list("raw/"))
    assert list(store.list("nothing/here/")) == []


def test_missing_objects_raise_object_not_found_naming_the_object(store: ObjectStore):
    where = store.uri("raw/t/missing.csv")
    with pytest.raises(ObjectNotFound, match=rf"{where}|raw/t/missing\.csv"):
        store.get_bytes("raw/t/missing.csv")
    with pytest.raises(ObjectNotFound, match=r"raw/t/missing\.csv"):
        with store.reading("raw/t/missing.csv"):
            pass
    with pytest.raises(ObjectNotFound, match=r"raw/t/missing\.csv"):
        store.copy("raw/t/missing.csv", "raw/t/copy.csv")


def test_malformed_keys_are_refused(store: ObjectStore):
    for key in ("", "/abs", "a//b", "a/../b"):
        with pytest.raises(StoreError, match="malformed object key"):
            store.put_bytes(key, b"x")


def test_writing_publishes_only_a_finished_block(store: ObjectStore):
    store.put_bytes("silver/x.parquet", b"old")
    with pytest.raises(RuntimeError, match="writer died"):
        with store.writing("silver/x.parquet") as staged:
            staged.write_bytes(b"half")
            raise RuntimeError("writer died")
    assert store.get_bytes("silver/x.parquet") == b"old"

    with store.writing("silver/x.parquet", suffix=".parquet") as staged:
        assert staged.suffix == ".parquet" and not staged.exists()
        staged.write_bytes(b"new")
    assert store.get_bytes("silver/x.parquet") == b"new"
    assert [item.key for item in store.list("silver/")] == ["silver/x.parquet"]


def test_publish_reading_and_copy(store: ObjectStore, tmp_path: Path):
    source = tmp_path / "made-elsewhere.csv"
    source.write_bytes(b"a,b\n1,2\n")
    store.publish(source, "raw/t/year=2013/file.csv")
    assert source.read_bytes() == b"a,b\n1,2\n"  # a file from outside the store is left alone
    with store.reading("raw/t/year=2013/file.csv") as local:
        assert local.read_bytes() == b"a,b\n1,2\n"
    store.copy("raw/t/year=2013/file.csv", "raw/t/_history/2024/file.csv")
    assert store.get_bytes("raw/t/_history/2024/file.csv") == b"a,b\n1,2\n"


def test_pyarrow_reads_a_parquet_footer_through_the_store_filesystem(store: ObjectStore, tmp_path: Path):
    with store.writing("bronze/legacy_requests/year=2022/part-00000.parquet", ".parquet") as staged:
        conversion = convert_csv(DATA_DIR / "legacy_v1_2022-01_qsv_boston311-100.csv", staged, LEGACY_REQUESTS)
    filesystem, base = store.arrow_filesystem()
    metadata = pq.read_metadata(f"{base}/bronze/legacy_requests/year=2022/part-00000.parquet", filesystem=filesystem)
    assert metadata.num_rows == conversion.rows > 0
    assert metadata.schema.to_arrow_schema().names == conversion.schema.names


def test_s3_keys_live_under_the_prefix(aws_client, aws_buckets: LakeBuckets):
    store = S3ObjectStore(aws_client("s3"), aws_buckets.lake, "zone/")
    store.put_bytes("bronze/a", b"1")
    listed = aws_client("s3").list_objects_v2(Bucket=aws_buckets.lake)["Contents"]
    assert [item["Key"] for item in listed] == ["zone/bronze/a"]
    assert store.uri("bronze/a") == f"s3://{aws_buckets.lake}/zone/bronze/a"
    with pytest.raises(StoreError, match="must end with '/'"):
        S3ObjectStore(aws_client("s3"), aws_buckets.lake, "zone")


def _encryption_of(client, bucket: str, key: str) -> tuple[str | None, str | None]:
    head = client.head_object(Bucket=bucket, Key=key)
    return head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")


def test_every_write_path_asks_for_server_side_encryption(
    s3_store: S3ObjectStore, aws_client, aws_buckets: LakeBuckets
):
    s3 = aws_client("s3")
    s3_store.put_bytes("a/small", b"x")
    with s3_store.writing("a/large") as staged:
        staged.write_bytes(b"L" * 6 * MIB)
    s3_store.copy("a/small", "b/small")
    s3_store.copy("a/large", "b/large")
    with s3_store.lock("_locks/encryption-check", ttl_seconds=60, holder="test"):
        assert _encryption_of(s3, aws_buckets.lake, "_locks/encryption-check") == ("AES256", None)
    for key in ("a/small", "a/large", "b/small", "b/large"):
        assert _encryption_of(s3, aws_buckets.lake, key) == ("AES256", None), key


def test_kms_encryption_names_the_key_on_every_object(aws_client, aws_buckets: LakeBuckets):
    key_id = aws_client("kms").create_key(Description="lake key")["KeyMetadata"]["KeyId"]
    store = S3ObjectStore(
        aws_client("s3"), aws_buckets.lake, encryption=ServerSideEncryption("aws:kms", key_id), transfer=SMALL_PARTS
    )
    store.put_bytes("k/small", b"x")
    store.put_bytes("k/large", b"L" * 6 * MIB)
    store.copy("k/large", "k/copy")
    for key in ("k/small", "k/large", "k/copy"):
        assert _encryption_of(aws_client("s3"), aws_buckets.lake, key) == ("aws:kms", key_id), key


def test_encryption_settings_are_checked():
    with pytest.raises(ValueError, match="'aws:kms', not 'AES256'"):
        ServerSideEncryption("AES256", "some-key")
    with pytest.raises(ValueError, match="'aws:fsx' is not supported"):
        ServerSideEncryption("aws:fsx")


def test_large_files_go_up_in_parts_and_small_ones_in_one_put(s3_store: S3ObjectStore, aws_client, aws_buckets):
    s3_store.put_bytes("big", b"B" * 6 * MIB)
    s3_store.put_bytes("small", b"s")
    etag = aws_client("s3").head_object(Bucket=aws_buckets.lake, Key="big")["ETag"]
    assert etag.strip('"').endswith("-2"), etag  # S3's ETag of a multipart upload is <md5 of md5s>-<parts>
    assert "-" not in aws_client("s3").head_object(Bucket=aws_buckets.lake, Key="small")["ETag"]
    with s3_store.reading("big") as local:
        assert local.stat().st_size == 6 * MIB


def test_readers_see_old_or_new_content_while_a_partition_is_replaced(s3_store: S3ObjectStore):
    key = "bronze/t/year=2013/part-00000.parquet"
    versions = [bytes([ord("a") + n]) * 6 * MIB for n in range(3)]  # multipart: completed in one step
    s3_store.put_bytes(key, versions[0])
    seen: list[bytes] = []
    problems: list[str] = []
    writer_done = threading.Event()

    def republish() -> None:
        try:
            for round_ in range(6):
                s3_store.put_bytes(key, versions[round_ % 3])
        finally:
            writer_done.set()

    def read() -> None:
        for _ in range(500):  # bounded even if the writer hangs
            listed = [item for item in s3_store.list("bronze/t/") if item.key == key]
            if len(listed) != 1 or listed[0].size != 6 * MIB:
                problems.append(f"listing showed {listed}")
            data = s3_store.get_bytes(key)
            if data not in versions:
                problems.append(f"read a mix: {len(data)} bytes starting {data[:1]!r} ending {data[-1:]!r}")
            seen.append(data[:1])
            if writer_done.is_set():
                return

    threads = [threading.Thread(target=republish)] + [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer_done.is_set()
    assert problems == []
    assert len(seen) >= 3
    assert s3_store.get_bytes(key) == versions[5 % 3]


def test_aws_errors_name_the_operation_the_object_and_aws_code(aws_client):
    store = S3ObjectStore(aws_client("s3"), "no-such-bucket-here")
    with pytest.raises(StoreError, match=r"GetObject of s3://no-such-bucket-here/a/b failed: NoSuchBucket"):
        store.get_bytes("a/b")
    with pytest.raises(StoreError, match=r"upload of s3://no-such-bucket-here/a/b failed: .*NoSuchBucket"):
        store.put_bytes("a/b", b"x")
    with pytest.raises(StoreError, match=r"ListObjectsV2 of s3://no-such-bucket-here/a/ failed: NoSuchBucket"):
        list(store.list("a/"))


def test_publishing_a_missing_file_names_it(s3_store: S3ObjectStore, tmp_path: Path):
    with pytest.raises(StoreError, match=r"cannot publish .*nothing\.csv to s3://.*/raw/x: no such file"):
        s3_store.publish(tmp_path / "nothing.csv", "raw/x")


def test_a_lock_admits_one_holder_at_a_time(s3_store: S3ObjectStore):
    with s3_store.lock("_locks/crawler/c.json", ttl_seconds=3600, holder="run-1"):
        with pytest.raises(LockHeld, match=r"_locks/crawler/c\.json is held .*run-1"):
            with s3_store.lock("_locks/crawler/c.json", ttl_seconds=3600, holder="run-2"):
                pass
    assert not s3_store.exists("_locks/crawler/c.json")
    with s3_store.lock("_locks/crawler/c.json", ttl_seconds=3600, holder="run-2"):
        assert b"run-2" in s3_store.get_bytes("_locks/crawler/c.json")


def test_status_lists_every_lease_with_its_holder_expiry_and_who_clears_it(s3_store: S3ObjectStore):
    s3_store.run_id = "run-7"
    later = lambda: datetime.now(UTC) + timedelta(hours=2)  # noqa: E731 - the clock of a run two hours on
    with s3_store.lock("_locks/crawler/c.json", ttl_seconds=3600, holder="nightly crawl"):
        (held,) = s3_store.leftovers()
        (expired,) = s3_store.leftovers(clock=later)
    assert held.location == expired.location == s3_store.uri("_locks/crawler/c.json")
    holder = f"nightly crawl, run run-7, host {socket.gethostname()} pid {os.getpid()}, since 20"
    assert held.description.startswith(f"a lease held by {holder}")
    assert re.search(r"; expires at 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00; ", held.description)
    assert held.description.endswith(
        "; taken over at once by the next run if its holder has ended; to clear it by hand once no run holds it: "
        + s3_store.clear_command("_locks/crawler/c.json")
    )
    assert expired.description.startswith(f"a lease of {holder}")
    assert re.search(r"that expired 3[56]\d\d s ago \(at 20.*\), so its holder died; the next run", expired.description)
    assert s3_store.leftovers(clock=later) == ()  # released


def test_status_lists_a_partition_claim_while_it_is_held(s3_store: S3ObjectStore):
    s3_store.run_id = "run-8"
    with s3_store.workspace("bronze.legacy_requests.2023"):
        (claim,) = s3_store.leftovers()
    assert claim.location == s3_store.uri("_locks/work/bronze.legacy_requests.2023.json")
    assert claim.description.startswith(f"a lease held by run run-8, host {socket.gethostname()} pid {os.getpid()}")
    assert s3_store.leftovers() == ()


def test_the_clear_command_names_the_bucket_key_and_where_s3_is(s3_store: S3ObjectStore, aws_env):
    assert s3_store.clear_command("_locks/work/x.json") == (
        f"aws s3api delete-object --bucket {s3_store.bucket} --key _locks/work/x.json "
        f"--endpoint-url {aws_env.url} --region us-east-1"
    )
    on_aws = S3ObjectStore(AwsSession("eu-west-1").client("s3"), "acme-lake", "zone/")  # AWS's own endpoint
    assert on_aws.clear_command("_locks/work/x.json") == (
        "aws s3api delete-object --bucket acme-lake --key zone/_locks/work/x.json --region eu-west-1"
    )


def test_an_expired_lease_is_taken_over_and_its_old_holder_told_on_release(s3_store: S3ObjectStore):
    later = lambda: datetime.now(UTC) + timedelta(hours=2)  # noqa: E731 - the clock of a run two hours on
    with pytest.raises(StoreError, match="lost the lock .* outlasted the lease"):
        with s3_store.lock("_locks/crawler/c.json", ttl_seconds=3600, holder="died-long-ago"):
            with s3_store.lock("_locks/crawler/c.json", ttl_seconds=3600, holder="successor", clock=later):
                assert b"successor" in s3_store.get_bytes("_locks/crawler/c.json")
            # the successor released its own lease; the first holder's release must not pass silently


# --- partition claims: a lease per unit of work ----------------------------------------------------------------

YEAR = "bronze.legacy_requests.2023"
YEAR_LEASE = f"_locks/work/{YEAR}.json"
QUICK = Backoff(initial_seconds=0.02, factor=2, max_seconds=0.2)


def _lease_of_another(s3_store: S3ObjectStore, **record: object) -> None:
    """A lease as a run elsewhere writes it (another host: its pid says nothing here)."""
    lease = {
        "holder": "run r-1, host ip-10-0-0-9 pid 7, since 2024-05-01T12:00:00+00:00",
        "run_id": "r-1",
        "host": "ip-10-0-0-9",
        "pid": 7,
        "acquired_at": "2024-05-01T12:00:00+00:00",
        "ttl_seconds": WORK_LEASE_TTL_SECONDS,
        **record,
    }
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=YEAR_LEASE, Body=json.dumps(lease).encode())


def test_a_partition_claim_is_a_lease_in_the_bucket_released_at_the_end(s3_store: S3ObjectStore, aws_client):
    s3_store.run_id = "run-1"
    with s3_store.workspace(YEAR) as work:
        assert work.folder.is_dir() and work.swept == []
        lease = json.loads(s3_store.get_bytes(YEAR_LEASE))
        assert {k: lease[k] for k in ("run_id", "host", "pid", "ttl_seconds")} == {
            "run_id": "run-1",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "ttl_seconds": WORK_LEASE_TTL_SECONDS,
        }
        assert lease["holder"].startswith(f"run run-1, host {socket.gethostname()} pid {os.getpid()}, since 20")
        head = aws_client("s3").head_object(Bucket=s3_store.bucket, Key=YEAR_LEASE)
        assert head["ServerSideEncryption"] == "AES256"
    assert not s3_store.exists(YEAR_LEASE)
    assert not work.folder.exists()


def test_a_live_holder_elsewhere_keeps_the_year_and_is_named(s3_store: S3ObjectStore):
    _lease_of_another(s3_store)
    with pytest.raises(WorkBusy) as busy:
        with s3_store.workspace(YEAR):
            pass
    assert str(busy.value) == (
        f"{YEAR} is being written by another run (run r-1, host ip-10-0-0-9 pid 7, since 2024-05-01T12:00:00+00:00; "
        f"lease {s3_store.uri(YEAR_LEASE)}, expires at "
        + (s3_store.client.head_object(Bucket=s3_store.bucket, Key=YEAR_LEASE)["LastModified"] + timedelta(hours=6))
        .astimezone(UTC)
        .isoformat(timespec="seconds")
        + ")"
    )
    assert b"r-1" in s3_store.get_bytes(YEAR_LEASE)  # untouched


def test_the_callers_word_that_a_holder_ended_takes_its_lease_over_at_once(s3_store: S3ObjectStore):
    _lease_of_another(s3_store)
    asked: list[object] = []

    def run_is_over(lease) -> bool:
        asked.append(lease["run_id"])
        return lease["run_id"] == "r-1"

    s3_store.holder_ended = run_is_over
    s3_store.run_id = "r-2"
    with s3_store.workspace(YEAR) as work:
        assert asked == ["r-1"]
        assert work.swept == [
            f"{s3_store.uri(YEAR_LEASE)} (the lease of run r-1, host ip-10-0-0-9 pid 7, since "
            "2024-05-01T12:00:00+00:00: its holder has ended)"
        ]
        assert json.loads(s3_store.get_bytes(YEAR_LEASE))["run_id"] == "r-2"
    assert not s3_store.exists(YEAR_LEASE)


def test_a_holder_on_this_host_is_alive_while_its_process_is_and_ended_once_its_pid_means_another(
    s3_store: S3ObjectStore,
):
    with s3_store.workspace(YEAR):
        mine = json.loads(s3_store.get_bytes(YEAR_LEASE))
        with pytest.raises(WorkBusy, match=rf"pid {os.getpid()}, since "):
            with s3_store.workspace(YEAR):  # the same process again: its holder is alive
                pass
    # The same pid, but a process that started at another moment: the holder is gone and its pid reused.
    reused = {**mine, "token": "theirs", "process": {**mine["process"], "started": "1"}}
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=YEAR_LEASE, Body=json.dumps(reused).encode())
    with s3_store.workspace(YEAR) as work:
        assert work.swept[0].endswith(": its process has ended)")
    # Another pid namespace (another container with the same host name): its pid says nothing here.
    elsewhere = {**mine, "token": "theirs", "pid": 2**22 + 1, "process": {"space": "x pid:[1]", "started": "1"}}
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=YEAR_LEASE, Body=json.dumps(elsewhere).encode())
    with pytest.raises(WorkBusy):
        with s3_store.workspace(YEAR):
            pass


def test_a_lease_that_is_not_ours_waits_out_the_takers_time_to_live(s3_store: S3ObjectStore):
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=YEAR_LEASE, Body=b"not json")
    with pytest.raises(WorkBusy, match=r"being written by another run \(not json; lease "):
        with s3_store.workspace(YEAR):
            pass
    (listed,) = s3_store.leftovers()
    assert listed.description.startswith("an object under the leases' prefix that is not a lease (not json); ")
    later = lambda: datetime.now(UTC) + timedelta(hours=7)  # noqa: E731 - a clock past the lease's time to live
    with s3_store.lock(YEAR_LEASE, ttl_seconds=WORK_LEASE_TTL_SECONDS, clock=later) as taken_over:
        assert taken_over is not None and taken_over.startswith("the lease of not json: it expired at ")


def _via(proxy: S3Proxy, bucket: str, *, botocore_retries: bool = True, **options: object) -> S3ObjectStore:
    """A store whose client reaches moto through the throttling proxy: the product's client, or one with
    botocore's own retries off, so that every 503 reaches the store."""
    if botocore_retries:
        client = AwsSession(REGION, {"": proxy.url}).client("s3")
    else:
        config = Config(retries={"mode": "standard", "total_max_attempts": 1})
        client = boto3.client("s3", region_name=REGION, endpoint_url=proxy.url, config=config)
    return S3ObjectStore(client, bucket, lease_backoff=QUICK, **options)  # type: ignore[arg-type]


def test_throttled_acquire_and_release_are_retried(s3_proxy: S3Proxy, aws_buckets: LakeBuckets):
    store = _via(s3_proxy, aws_buckets.lake, botocore_retries=False)
    lease = f"/{aws_buckets.lake}/{YEAR_LEASE}"
    _lease_of_another(store, ttl_seconds=1, acquired_at="2000-01-01T00:00:00+00:00")  # expired: taken over
    s3_proxy.throttle("PUT", lease, times=2)
    s3_proxy.throttle("GET", lease, times=2)
    s3_proxy.throttle("DELETE", lease, times=2)
    later = lambda: datetime.now(UTC) + timedelta(seconds=5)  # noqa: E731 - its time to live has passed
    with store.lock(YEAR_LEASE, ttl_seconds=60, clock=later) as taken_over:
        assert taken_over is not None and "it expired at" in taken_over
    methods = [request.split(" ")[0] for request in s3_proxy.throttled]
    assert sorted(methods) == ["DELETE", "DELETE", "GET", "GET", "PUT", "PUT"]
    assert not store.exists(YEAR_LEASE)


def test_a_write_that_went_through_but_was_answered_503_is_known_as_ours(s3_proxy: S3Proxy, aws_buckets: LakeBuckets):
    store = _via(s3_proxy, aws_buckets.lake)
    lease = f"/{aws_buckets.lake}/{YEAR_LEASE}"
    s3_proxy.throttle("PUT", lease, times=1, after_doing_it=True)  # the retried PUT meets our own lease
    s3_proxy.throttle("DELETE", lease, times=1, after_doing_it=True)  # the retried DELETE finds it gone
    with store.workspace(YEAR) as work:
        assert work.swept == []
    assert len(s3_proxy.throttled) == 2
    assert not store.exists(YEAR_LEASE)


def test_a_release_that_stays_throttled_gives_up_naming_the_lease_and_the_command(
    s3_proxy: S3Proxy, aws_buckets: LakeBuckets
):
    store = _via(s3_proxy, aws_buckets.lake, botocore_retries=False, lease_retry_seconds=0.3)
    s3_proxy.throttle("DELETE", f"/{aws_buckets.lake}/{YEAR_LEASE}", times=10_000)
    with pytest.raises(StoreError) as gave_up:
        with store.workspace(YEAR):
            pass
    message = str(gave_up.value)
    assert message.startswith(
        f"could not release the lease {store.uri(YEAR_LEASE)}: S3 DeleteObject (lock) kept failing for 0 s "
        "(SlowDown: Please reduce your request rate.). It holds its work off until it "
        "expires at 20"
    )
    command = store.clear_command(YEAR_LEASE)
    assert message.endswith(f"once no run holds it, clear it by hand: {command}")
    assert len(s3_proxy.throttled) >= 2  # retried before giving up
    s3_proxy.stop_throttling()
    assert store.exists(YEAR_LEASE)
    delete_as_pasted(command)
    assert not store.exists(YEAR_LEASE)
