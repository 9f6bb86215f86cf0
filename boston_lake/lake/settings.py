"""The environment, read in one place and validated before anything runs.

Every other module receives a `Settings`; nothing else reads `os.environ`, so a bad value fails at load
time with the variable's name instead of deep inside a run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

TARGETS = ("local", "aws")
DEFAULT_PORTAL_URL = "https://data.boston.gov"
DEFAULT_HOME = ".boston_lake"


class SettingsError(ValueError):
    """A configuration variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    target: str
    home: Path
    portal_url: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        target = _value(env, "BOSTON_LAKE_TARGET") or "local"
        if target not in TARGETS:
            raise SettingsError(
                f"BOSTON_LAKE_TARGET={target!r} is not a known target; use one of {', '.join(TARGETS)}"
            )
        home = Path(_value(env, "BOSTON_LAKE_HOME") or DEFAULT_HOME).expanduser().resolve()
        portal_url = check_http_url("BOSTON_LAKE_PORTAL_URL", _value(env, "BOSTON_LAKE_PORTAL_URL") or DEFAULT_PORTAL_URL)
        return cls(target=target, home=home, portal_url=portal_url)


def _value(env: Mapping[str, str], name: str) -> str:
    """An unset and an empty variable mean the same: use the default (an empty endpoint breaks botocore)."""
    return env.get(name, "").strip()


def check_http_url(variable: str, url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingsError(f"{variable}={url!r} is not an http(s) URL such as https://data.boston.gov")
    return url.rstrip("/")
