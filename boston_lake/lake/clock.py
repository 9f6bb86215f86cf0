"""The lake's one reading of the wall clock: what time it is now, in UTC, for stamps people and manifests read.

Every "when" the lake records (a download's time, a catalog entry's creation, a lock's holder, a lease's expiry,
a report's date) comes from `utc_now`, so none depends on the machine's time zone, and a test has one place to
look for it. Durations are not clock readings: the interval timers that measure how long something took or
when to poll again use `time.monotonic`, which never jumps with the wall clock, and stay as they are.

This module imports nothing of the lake, so every module of it may import this one.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


def utc_now_iso() -> str:
    """Now as ISO 8601 to the second with its offset, e.g. `2024-05-01T12:34:56+00:00` (manifests and lock holders)."""
    return utc_now().isoformat(timespec="seconds")
