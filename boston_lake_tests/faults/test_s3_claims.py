"""On S3, runs of one year in processes that share nothing but the bucket (two ECS tasks): one claims the year,
the other fails at once naming it; a killed holder's claim is taken over, not waited out; a throttled release is
retried, so no lease is left to lock the next run out."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterRun, DagsterRunStatus, MaterializeResult, asset, instance_for_test, materialize

from boston_lake.defs.resources import LakeStorageResource, build_resources
from boston_lake.lake import layout
from boston_lake.lake.aws.s3 import LockHeld, S3ObjectStore
from boston_lake.lake.aws.session import AwsSession, Backoff
from boston_lake.lake.stores import WorkBusy
from boston_lake_tests.faults.conftest import REPO, boston_lake
from boston_lake_tests.faults.scenario import fault
from boston_lake_tests.support.moto_server import REGION, LakeBuckets, MotoServer
from boston_lake_tests.support.s3_faults import S3Proxy, delete_as_pasted

YEAR = "bronze.legacy_requests.2023"
PUBLISHED = "bronze/boston311/legacy_requests/year=2023/part-00000.parquet"

# One run's claim of a year on the S3 store, in its own process: it says "ready", waits for a line ("go"), claims
# the year, and says "claimed" and waits for another line before publishing, or "busy <why>" and exits 3.
# `host` other than "-" stands for another machine: the run reports that host name.
CLAIM = """
import socket, sys
from boston_lake.lake.aws.s3 import LockHeld, S3ObjectStore
from boston_lake.lake.aws.session import AwsSession
from boston_lake.lake.stores import WorkBusy

endpoint, bucket, name, run_id, host, published = sys.argv[1:7]
if host != "-":
    socket.gethostname = lambda: host
store = S3ObjectStore(AwsSession("us-east-1", {"": endpoint}).client("s3"), bucket, run_id=run_id)
print("ready", flush=True)
sys.stdin.readline()
try:
    with store.workspace(name) as work:
        print("claimed", flush=True)
        sys.stdin.readline()
        staged = work.folder / "part-00000.parquet"
        staged.write_bytes(run_id.encode())
        store.publish(staged, published)
except WorkBusy as busy:
    print(f"busy {busy}", flush=True)
    sys.exit(3)
"""


class Run:
    """A run in its own process that shares nothing with the test or another run but the S3 endpoint: its own
    temporary folder (so no local lock file is shared) and an environment of only the keys and the region."""

    def __init__(self, endpoint: str, bucket: str, run_id: str, folder: Path, host: str = "-"):
        folder.mkdir(parents=True)
        environment = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(REPO),
            "TMPDIR": str(folder),
            "HOME": str(folder),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }
        self.run_id = run_id
        self.process = subprocess.Popen(
            [sys.executable, "-c", CLAIM, endpoint, bucket, YEAR, run_id, host, PUBLISHED],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=folder,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put("")  # the process closed its output

    def said(self, timeout: float = 60) -> str:
        """The run's next line, waited for until a deadline."""
        return self.lines.get(timeout=timeout)

    def tell(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def ended(self, timeout: float = 60) -> int:
        return self.process.wait(timeout=timeout)


@pytest.fixture
def runs(aws_env: MotoServer, aws_buckets: LakeBuckets, tmp_path: Path) -> Iterator[Callable[..., Run]]:
    started: list[Run] = []

    def start(run_id: str, host: str = "-", endpoint: str | None = None) -> Run:
        run = Run(endpoint or aws_env.url, aws_buckets.lake, run_id, tmp_path / run_id, host)
        started.append(run)
        return run

    yield start
    for run in started:
        run.process.kill()
        run.process.wait(timeout=60)


def lease_keys(aws_client: Callable[[str], Any], bucket: str) -> list[str]:
    listed = aws_client("s3").list_objects_v2(Bucket=bucket, Prefix=layout.LOCKS_PREFIX)
    return [item["Key"] for item in listed.get("Contents", [])]


@contextmanager
def claimed_here(store: S3ObjectStore) -> Iterator[list[str]]:
    """The year claimed by this test's own process, as the next run would; yields what the claim swept."""
    with store.workspace(YEAR) as work:
        yield work.swept


@pytest.mark.slow
@fault(
    "concurrency",
    "two runs of one year at once on S3, in processes that share nothing but the bucket",
    "exactly one claims the year; the other fails at once naming the holder (run, host, pid, since when); "
    "the next run after it claims the year",
    "n/a",
)
def test_two_runs_of_one_year_on_s3(runs, aws_client, aws_buckets: LakeBuckets) -> None:
    first, second = runs("run-a"), runs("run-b")
    assert (first.said(), second.said()) == ("ready", "ready")
    first.tell()
    second.tell()  # both claim at once
    answers = {first.run_id: first.said(), second.run_id: second.said()}
    assert sorted(answer.split(" ", 1)[0] for answer in answers.values()) == ["busy", "claimed"], answers
    holder, loser = (first, second) if answers[first.run_id] == "claimed" else (second, first)
    busy = answers[loser.run_id]
    assert busy.startswith(f"busy {YEAR} is being written by another run (run {holder.run_id}, ")
    assert f"host {socket.gethostname()} pid {holder.process.pid}, since " in busy
    assert f"lease s3://{aws_buckets.lake}/_locks/work/{YEAR}.json, expires at " in busy
    assert loser.ended() == 3

    holder.tell()  # publishes and releases
    assert holder.ended() == 0
    assert aws_client("s3").get_object(Bucket=aws_buckets.lake, Key=PUBLISHED)["Body"].read() == holder.run_id.encode()
    assert lease_keys(aws_client, aws_buckets.lake) == []

    following = runs("run-c")
    assert following.said() == "ready"
    following.tell()
    assert following.said() == "claimed"
    following.tell()
    assert following.ended() == 0
    assert aws_client("s3").get_object(Bucket=aws_buckets.lake, Key=PUBLISHED)["Body"].read() == b"run-c"


@fault(
    "crash",
    "SIGKILL of a run holding a year on S3",
    "the next run on the same host takes its lease over at once (not after the lease's 6 h) and says so",
    "n/a",
)
def test_killed_holder_on_s3_is_taken_over_at_once(runs, aws_client, aws_buckets: LakeBuckets) -> None:
    killed = runs("killed-run")
    assert killed.said() == "ready"
    killed.tell()
    assert killed.said() == "claimed"
    killed.process.send_signal(signal.SIGKILL)
    assert killed.ended() == -signal.SIGKILL
    assert lease_keys(aws_client, aws_buckets.lake) == [f"_locks/work/{YEAR}.json"]  # the dead run's lease

    store = S3ObjectStore(aws_client("s3"), aws_buckets.lake, run_id="next-run")
    began = time.monotonic()
    with claimed_here(store) as swept:
        assert time.monotonic() - began < 30
        (taken_over,) = swept
        assert taken_over.startswith(f"s3://{aws_buckets.lake}/_locks/work/{YEAR}.json (the lease of run killed-run, ")
        assert taken_over.endswith(": its process has ended)")
        lease = aws_client("s3").get_object(Bucket=aws_buckets.lake, Key=f"_locks/work/{YEAR}.json")["Body"].read()
        assert b'"run_id": "next-run"' in lease
    assert lease_keys(aws_client, aws_buckets.lake) == []


@fault(
    "crash",
    "SIGKILL of a run holding a year on S3, on another machine",
    "the next run fails at once naming the holder and when its lease expires; `status` lists the lease with its "
    "holder, expiry and the command that clears it; once cleared, the next run claims the year",
    "n/a",
)
@pytest.mark.slow  # a second process, SIGKILLed, against moto
def test_killed_holder_on_another_machine(
    runs, aws_client, aws_buckets: LakeBuckets, aws_environment: dict[str, str], tmp_path: Path
) -> None:
    elsewhere = runs("run-elsewhere", host="ip-10-0-7-12.ec2.internal")
    assert elsewhere.said() == "ready"
    elsewhere.tell()
    assert elsewhere.said() == "claimed"
    elsewhere.process.send_signal(signal.SIGKILL)
    assert elsewhere.ended() == -signal.SIGKILL

    store = S3ObjectStore(aws_client("s3"), aws_buckets.lake, run_id="next-run")
    holder = f"run run-elsewhere, host ip-10-0-7-12.ec2.internal pid {elsewhere.process.pid}, since "
    with pytest.raises(WorkBusy, match=rf"{YEAR} is being written by another run \({holder}.*expires at 20"):
        with claimed_here(store):
            pass

    status = boston_lake("status", home=tmp_path / "home", **aws_environment)
    lease = f"s3://{aws_buckets.lake}/_locks/work/{YEAR}.json"
    (line,) = [line.strip() for line in status.stdout.splitlines() if line.strip().startswith(lease)]
    assert line.startswith(f"{lease}: a lease held by {holder}")
    assert "; expires at 20" in line
    assert (
        "taken over at once by the next run if its holder has ended; to clear it by hand once no run holds it: " in line
    )
    delete_as_pasted(line.split("once no run holds it: ", 1)[1])
    with claimed_here(store) as swept:
        assert swept == []
    assert lease_keys(aws_client, aws_buckets.lake) == []


@fault(
    "aws",
    "S3 throttles (503 SlowDown) the release of a lease, beyond botocore's own retries",
    "the release is retried with backoff until it goes through; no lease is left to lock the next run out",
    "n/a",
)
@pytest.mark.slow  # waits out the release's retries through a throttling proxy
def test_throttled_release_is_retried(s3_proxy: S3Proxy, aws_client, aws_buckets: LakeBuckets) -> None:
    client = AwsSession(REGION, {"": s3_proxy.url}).client("s3")  # the product's client, botocore's retries on
    store = S3ObjectStore(client, aws_buckets.lake, run_id="throttled", lease_backoff=Backoff(0.05, 2, 0.5))
    lease = f"/{aws_buckets.lake}/_locks/work/{YEAR}.json"
    with store.workspace(YEAR):
        s3_proxy.throttle("DELETE", lease, times=4)  # botocore tries 3 times: the store's own retry is needed
    assert [request.split("?")[0] for request in s3_proxy.throttled] == [f"DELETE {lease}"] * 4
    assert lease_keys(aws_client, aws_buckets.lake) == []
    with store.workspace(YEAR) as work:  # the next run is not locked out
        assert work.swept == []


@pytest.mark.slow
@fault(
    "crash",
    "SIGKILL of a run holding a year on S3, on another machine, once Dagster has marked that run ended",
    "the next Dagster run takes the claim over at once (the instance says its holder ended) and says so",
    "n/a",
)
def test_a_claim_whose_dagster_run_ended_is_taken_over_at_once(runs, aws_settings, tmp_path: Path) -> None:
    with instance_for_test() as instance:
        ended = instance.add_run(DagsterRun(job_name="ingest_legacy_requests", status=DagsterRunStatus.FAILURE))
        elsewhere = runs(ended.run_id, host="ip-10-0-7-12.ec2.internal")
        assert elsewhere.said() == "ready"
        elsewhere.tell()
        assert elsewhere.said() == "claimed"
        elsewhere.process.send_signal(signal.SIGKILL)  # its container is gone; run monitoring marked it failed
        assert elsewhere.ended() == -signal.SIGKILL

        swept: list[str] = []

        @asset
        def claims_the_year(storage: LakeStorageResource) -> MaterializeResult:
            with storage.lake_zone().workspace(YEAR) as work:
                swept.extend(work.swept)
            return MaterializeResult()

        resources = build_resources(aws_settings)
        assert materialize([claims_the_year], resources=resources, instance=instance).success
    assert len(swept) == 1 and ended.run_id in swept[0], swept


# Long work on another machine under a lease with a short time to live: it says "held", then works until told.
LONG_WORK = """
import socket, sys
from boston_lake.lake.aws.s3 import LockHeld, S3ObjectStore
from boston_lake.lake.aws.session import AwsSession

endpoint, bucket, key, ttl = sys.argv[1:5]
socket.gethostname = lambda: "ip-10-0-7-13.ec2.internal"
store = S3ObjectStore(AwsSession("us-east-1", {"": endpoint}).client("s3"), bucket, run_id="long-run")
with store.lock(key, ttl_seconds=float(ttl), holder="a long crawl"):
    print("held", flush=True)
    sys.stdin.readline()
"""
SHORT_TTL_SECONDS = 3


@fault(
    "concurrency",
    "a run on another machine works longer than its lease's time to live",
    "its lease is renewed while it lives (conditional writes), so a second run fails naming it instead of taking "
    "it over; the holder releases its own lease at the end",
    "n/a",
)
@pytest.mark.slow  # it outlasts a time to live of a few seconds, by design
def test_long_work_keeps_its_lease_past_the_time_to_live(
    aws_env: MotoServer, aws_client, aws_buckets: LakeBuckets, tmp_path: Path
) -> None:
    key = "_locks/crawler/boston311.json"
    environment = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        "TMPDIR": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    work = subprocess.Popen(
        [sys.executable, "-c", LONG_WORK, aws_env.url, aws_buckets.lake, key, str(SHORT_TTL_SECONDS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert work.stdout is not None and work.stdout.readline().strip() == "held"
        s3 = aws_client("s3")
        taken = s3.head_object(Bucket=aws_buckets.lake, Key=key)["LastModified"]
        first_expiry = taken + timedelta(seconds=SHORT_TTL_SECONDS)
        deadline = time.monotonic() + 60
        # Wait for the event: the lease written again after the time to live it was taken with had run out.
        while s3.head_object(Bucket=aws_buckets.lake, Key=key)["LastModified"] <= first_expiry:
            assert time.monotonic() < deadline, "the lease was never renewed past its first time to live"
            time.sleep(0.1)

        store = S3ObjectStore(s3, aws_buckets.lake, run_id="second-run")
        with pytest.raises(LockHeld, match=r"is held by a long crawl, run long-run, host ip-10-0-7-13.ec2.internal"):
            with store.lock(key, ttl_seconds=SHORT_TTL_SECONDS):
                pass
    finally:
        assert work.stdin is not None
        work.stdin.close()
        assert work.wait(timeout=60) == 0  # its release found its own lease: nobody took it over
    assert lease_keys(aws_client, aws_buckets.lake) == []
