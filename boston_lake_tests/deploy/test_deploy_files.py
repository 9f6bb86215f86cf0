"""What can be checked of deploy/ without a Docker engine: the files agree with each other and with the code.

(The processes themselves run in test_production_shape.py, from these very commands.)
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml

from boston_lake.defs.keys import CRAWLER_POOL
from boston_lake_tests.support.deploy_files import (
    DEPLOY,
    REPO,
    compose_service,
    dockerfile_instructions,
    image_environment,
)

DAGSTER_SERVICES = ("code-server", "webserver", "daemon", "init-pools")


def env_variables(config: Any) -> set[str]:
    """Every variable a Dagster YAML reads with `{env: NAME}`."""
    if isinstance(config, dict):
        own = {config["env"]} if set(config) == {"env"} else set()
        return own.union(*(env_variables(value) for value in config.values()))
    if isinstance(config, list):
        return set().union(*(env_variables(item) for item in config))
    return set()


def test_every_variable_the_instance_and_workspace_read_is_set_for_every_dagster_service():
    needed = env_variables(yaml.safe_load((DEPLOY / "dagster.yaml").read_text())) | env_variables(
        yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    )
    assert needed == {"DAGSTER_POSTGRES_URL", "DAGSTER_CODE_SERVER_HOST", "DAGSTER_CODE_SERVER_PORT"}
    for service in DAGSTER_SERVICES:
        provided = set(compose_service(service)["environment"]) | set(image_environment())
        assert needed <= provided, f"{service} lacks {needed - provided}"


def test_the_database_url_names_the_psycopg2_driver_and_no_password_is_written_down():
    for service in DAGSTER_SERVICES:
        url = compose_service(service)["environment"]["DAGSTER_POSTGRES_URL"]
        assert url.startswith("postgresql+psycopg2://"), (service, url)
        assert "${POSTGRES_PASSWORD:?" in url, (service, url)
    assert compose_service("postgres")["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_the_pool_that_compose_limits_is_the_crawlers():
    assert compose_service("init-pools")["entrypoint"] == [
        "dagster",
        "instance",
        "concurrency",
        "set",
        CRAWLER_POOL,
        "1",
    ]
    assert compose_service("daemon")["depends_on"]["init-pools"] == {"condition": "service_completed_successfully"}


def test_the_workspace_names_the_location_the_image_serves():
    (entry,) = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert entry["grpc_server"]["location_name"] == image_environment()["DAGSTER_LOCATION_NAME"]
    assert entry["grpc_server"]["location_name"] == pyproject["tool"]["dagster"]["code_location_name"]


def test_the_image_installs_the_deploy_extra_at_the_pinned_versions_and_runs_as_a_user():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = {
        re.split(r"==", line)[0].lower().replace("_", "-")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for requirement in pyproject["project"]["optional-dependencies"]["deploy"]:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} (deploy extra) is not pinned in constraints.txt"
    assert "pip install -c constraints.txt '.[deploy]'" in dockerfile_instructions("RUN")
    (user,) = dockerfile_instructions("USER")
    assert user not in ("root", "0")


def test_what_the_image_copies_is_in_the_build_context():
    allowed = {
        line.removeprefix("!") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    for instruction in dockerfile_instructions("COPY"):
        *sources, _destination = instruction.split()
        for source in sources:
            assert (REPO / source).exists(), source
            assert source in allowed, f"{source} is excluded by .dockerignore"
