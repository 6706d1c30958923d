"""How /v1/usage splits a window of local days into the daily edges and the whole months between them."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.query.views import month_split

DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 1))


@given(DAYS, st.integers(min_value=1, max_value=800))
def test_the_edges_and_the_whole_months_cover_the_window_once(first, length):
    end = first + timedelta(days=length)
    whole_from, whole_to = month_split(first, end)
    assert first <= whole_from <= whole_to <= end
    assert (whole_from.day, whole_to.day) == (1, 1) or whole_from == whole_to == first
    # the middle is whole months only, and no whole month is left on the edges
    assert not any(d.day == 1 and (d.replace(day=28) + timedelta(days=4)).replace(day=1) <= end
                   for d in _days(first, whole_from))
    next_month = (whole_to.replace(day=28) + timedelta(days=4)).replace(day=1)
    assert whole_from == whole_to == first or next_month > end or whole_to == end


def _days(first: date, end: date):
    return (first + timedelta(days=k) for k in range((end - first).days))


def test_a_window_of_whole_months_is_all_months_and_one_inside_a_month_is_all_days():
    assert month_split(date(2025, 1, 1), date(2026, 1, 1)) == (date(2025, 1, 1), date(2026, 1, 1))
    assert month_split(date(2025, 3, 17), date(2025, 3, 30)) == (date(2025, 3, 17), date(2025, 3, 17))
    assert month_split(date(2025, 3, 17), date(2025, 4, 5)) == (date(2025, 3, 17), date(2025, 3, 17))
    assert month_split(date(2025, 3, 17), date(2025, 6, 5)) == (date(2025, 4, 1), date(2025, 6, 1))
    assert month_split(date(2024, 2, 29), date(2025, 3, 1)) == (date(2024, 3, 1), date(2025, 3, 1))
