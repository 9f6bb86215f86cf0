"""What the sensors and the runs' logs make of a set of years."""

from boston_lake.defs.automation import year_ranges


def test_years_are_named_as_spans_of_consecutive_ones():
    assert year_ranges([2016, 2011, 2012, 2013, 2019, 2020]) == "2011-2013, 2016, 2019-2020"
    assert year_ranges([2013, 2021, 2022, 2023, 2026]) == "2013, 2021-2023, 2026"
    assert year_ranges([2025]) == "2025"
