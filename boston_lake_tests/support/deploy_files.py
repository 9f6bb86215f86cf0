"""deploy/'s Dockerfile and docker-compose.yml, read the way Docker reads them, so tests run their commands."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def dockerfile_instructions(name: str) -> list[str]:
    """Arguments of every `name` instruction of deploy/Dockerfile, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [line[len(name) :].strip() for line in lines if line.startswith(f"{name} ")]


def image_environment() -> dict[str, str]:
    return dict(item.split("=", 1) for line in dockerfile_instructions("ENV") for item in shlex.split(line))


def image_entrypoint() -> list[str]:
    (entrypoint,) = dockerfile_instructions("ENTRYPOINT")
    return json.loads(entrypoint)


def compose_service(service: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"][service]
