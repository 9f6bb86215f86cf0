"""The logger every core module writes to: Dagster's `context.log` and `logging.Logger` both fit it."""

from __future__ import annotations

from typing import Any, Protocol


class Log(Protocol):
    def info(self, msg: str, *args: Any) -> None: ...

    def warning(self, msg: str, *args: Any) -> None: ...
