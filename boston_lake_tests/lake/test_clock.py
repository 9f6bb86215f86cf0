from __future__ import annotations

import re
from datetime import UTC, timedelta

from boston_lake.lake.clock import utc_now, utc_now_iso


def test_now_is_utc_and_aware():
    now = utc_now()
    assert now.tzinfo is UTC
    assert now.utcoffset() == timedelta(0)


def test_the_iso_stamp_is_to_the_second_with_its_offset():
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00", utc_now_iso())
