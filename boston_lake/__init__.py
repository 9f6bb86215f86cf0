"""boston_lake: a Dagster data lake of Boston's 311 service requests. `open_lake()` reads it from Python.

`open_lake` is imported on first use: a process that imports one part of the package (the silver Glue job, the
Dagster code server) does not load the query engines with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boston_lake.lake.notebook import Lake, open_lake

__all__ = ["Lake", "open_lake"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from boston_lake.lake import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'boston_lake' has no attribute {name!r}")
