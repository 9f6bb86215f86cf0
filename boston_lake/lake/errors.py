"""The one base of the lake's own errors.

Every error the core raises on purpose (a bad setting, a portal that failed, a partition that could not be
built, a query that could not run) derives from `LakeError`, so the `boston-lake` command and the Dagster
wiring have one thing to catch to tell "the lake refused, and the message says why" from a bug. Each error
keeps the built-in base its callers already catch (`RuntimeError`, `ValueError`, `TimeoutError`) as a second
base. A test (boston_lake_tests/lake/test_errors.py) fails when a public exception of the core lacks this base.

This module imports nothing of the lake, so every module of it may import this one.
"""

from __future__ import annotations


class LakeError(Exception):
    """An error the lake raises on purpose; its message names what failed and, where there is one, the fix."""
