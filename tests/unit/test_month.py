"""The one Month value: parse (ASCII YYYY-MM only), local bounds, next, previous, trailing(n)."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.periods import LOCAL_TZ, Month

# datetime reaches the years 1–9999, and a month's end is the next month's start
months = st.builds(Month, st.integers(1, 9998), st.integers(1, 12))


@given(months)
def test_a_month_parses_back_from_its_text(month):
    text = str(month)
    assert len(text) == 7 and text.isascii()
    assert Month.parse(text) == month


@given(months)
def test_next_and_previous_are_inverse(month):
    assert month.next().previous() == month
    assert month.previous().next() == month
    assert month.previous() < month < month.next()


@given(months)
def test_a_month_ends_where_the_next_begins_at_local_midnight(month):
    start, end = month.bounds
    assert end == month.next().start and start == month.previous().end
    assert start.tzinfo is LOCAL_TZ and end.tzinfo is LOCAL_TZ
    assert (start.day, start.hour, start.minute) == (1, 0, 0)
    assert timedelta(days=28) <= end - start <= timedelta(days=31)
    assert Month.of(start) == month and Month.of(end - timedelta(microseconds=1)) == month


@given(months.filter(lambda m: m.year > 10), st.integers(1, 120))
def test_trailing_n_is_n_consecutive_months_ending_with_this_one(month, n):
    trailing = month.trailing(n)
    assert len(trailing) == n and trailing[-1] == month
    assert all(later == earlier.next() for earlier, later in zip(trailing, trailing[1:]))


def test_a_month_is_counted_in_local_time():
    assert Month.of(datetime(2026, 11, 30, 15, 59, tzinfo=UTC)) == Month(2026, 11)  # 23:59 local
    assert Month.of(datetime(2026, 11, 30, 16, 0, tzinfo=UTC)) == Month(2026, 12)  # local midnight
    assert Month(2026, 12).end.astimezone(UTC) == datetime(2026, 12, 31, 16, tzinfo=UTC)
    assert [str(m) for m in Month(2027, 2).trailing(3)] == ["2026-12", "2027-01", "2027-02"]


@given(st.text(st.characters(categories=["Nd"]), min_size=6, max_size=6).filter(lambda t: not t.isascii()))
def test_non_ascii_digits_are_not_a_month(digits):
    with pytest.raises(ValueError):
        Month.parse(f"{digits[:4]}-{digits[4:]}")


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "2026-10 ", "２０２６-10", "2026/10", ""])
def test_only_canonical_text_is_a_month(text):
    with pytest.raises(ValueError):
        Month.parse(text)


def test_a_month_out_of_the_calendar_cannot_be_made():
    with pytest.raises(ValueError):
        Month(2026, 13)
