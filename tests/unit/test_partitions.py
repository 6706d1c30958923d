"""usage_hourly's month partitions, pure: names, bounds at local midnight, ranges of months, the upkeep window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.common.periods import LOCAL_TZ, Month
from services.projection.partitions import (
    is_partition_name,
    partition_bounds,
    partition_name,
    upkeep_range,
)

months = st.builds(Month, st.integers(2, 9998), st.integers(1, 12))


@given(months)
def test_a_months_partition_is_named_by_its_year_and_month_and_recognised(month):
    name = partition_name(month)
    assert name == f"usage_hourly_{str(month).replace('-', '_')}"
    assert is_partition_name(name)


def test_only_partition_names_are_recognised_as_partitions():
    assert is_partition_name("usage_hourly_default")
    for other in ("usage_hourly", "usage_hourly_2025_13", "usage_hourly_2025_3", "usage_daily_2025_03",
                  "x_usage_hourly_2025_03", "usage_hourly_2025_03_old"):
        assert not is_partition_name(other)


@given(months)
def test_a_months_partition_runs_from_local_midnight_of_its_first_to_the_next_months(month):
    lower, upper = partition_bounds(month)
    assert lower.astimezone(LOCAL_TZ).timetuple()[:6] == (month.year, month.month, 1, 0, 0, 0)
    assert upper == partition_bounds(month.next())[0]  # adjacent: no hour falls between two months
    if month.year >= 1992:  # Shanghai is UTC+8 all year since its last summer time (1991)
        assert lower.astimezone(UTC).hour == 16  # the bound is 16:00 UTC the day before
    assert Month.of(lower) == month and Month.of(upper - timedelta(hours=1)) == month


@given(st.builds(Month, st.integers(10, 9990), st.integers(1, 12)), st.integers(-30, 30))
def test_a_month_through_another_counts_every_month_once_in_order(first, span):
    last = first.shifted(span)
    between = first.through(last)
    assert between == sorted(set(between))
    if last >= first:
        assert between[0] == first and between[-1] == last
        assert len(between) == (last.year - first.year) * 12 + last.month - first.month + 1
    else:
        assert between == []


def test_the_services_keep_last_month_to_two_months_ahead_in_local_time():
    # 2025-12-31 17:00 UTC is already January 2026 in Shanghai
    assert upkeep_range(datetime(2025, 12, 31, 17, tzinfo=UTC)) == (Month(2025, 12), Month(2026, 3))
    assert upkeep_range(datetime(2025, 12, 31, 15, tzinfo=UTC)) == (Month(2025, 11), Month(2026, 2))
