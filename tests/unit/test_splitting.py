from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from services.metering.domain.splitting import split_into_hours

T0 = datetime(2026, 10, 31, 15, 0, tzinfo=UTC)  # 23:00 local on the last day of October
STEP = Fraction(1, 10**9)  # the documented precision of a part

# Up to the contract's limits: 21 whole digits and 9 places (30 digits, beyond the default 28-digit context).
LARGEST = Decimal("999999999999999999999.999999999")
quantities = st.one_of(
    st.decimals(min_value=0, max_value=LARGEST, places=9, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=10**9, places=9, allow_nan=False, allow_infinity=False),
    st.sampled_from([LARGEST, Decimal("0.000000001"), Decimal(0), Decimal("1E+20")]),
)
offsets = st.integers(min_value=0, max_value=10 * 24 * 3600 * 1000)
lengths = st.integers(min_value=1, max_value=72 * 3600 * 1000)


@given(quantities, offsets, lengths)
def test_parts_sum_exactly_to_the_event_quantity(quantity, offset_ms, length_ms):
    start = T0 + timedelta(milliseconds=offset_ms)
    end = start + timedelta(milliseconds=length_ms)
    parts = split_into_hours(start, end, quantity)
    assert sum(Fraction(p.quantity) for p in parts) == quantity  # exact: a Decimal sum would round at 28 digits
    assert all(p.quantity >= 0 for p in parts)
    assert all(p.quantity.as_tuple().exponent >= -9 for p in parts)


@given(quantities, offsets, lengths)
def test_slices_cover_consecutive_hours_and_start_inside_their_hour(quantity, offset_ms, length_ms):
    start = T0 + timedelta(milliseconds=offset_ms)
    end = start + timedelta(milliseconds=length_ms)
    parts = split_into_hours(start, end, quantity)
    assert parts[0].start == start
    for a, b in zip(parts, parts[1:]):
        assert b.hour - a.hour == timedelta(hours=1)
        assert b.start == b.hour
    for p in parts:
        assert p.hour <= p.start < p.hour + timedelta(hours=1)
    assert parts[-1].hour < end <= parts[-1].hour + timedelta(hours=1)


@given(quantities, offsets, st.integers(min_value=3600 * 1000, max_value=72 * 3600 * 1000))
def test_each_hours_part_is_proportional_to_its_overlap_within_1e_9(quantity, offset_ms, length_ms):
    """Against exact fractions of the overlap: every part but the last is its share rounded down (less than 1e-9
    under it), and the last takes the remainder (under 1e-9 over its share per part before it)."""
    start = T0 + timedelta(milliseconds=offset_ms)
    end = start + timedelta(milliseconds=length_ms)
    parts = split_into_hours(start, end, quantity)
    hour = datetime(start.year, start.month, start.day, start.hour, tzinfo=UTC)
    shares = []
    while hour < end:  # the hours [start, end) touches, each with its exact share of the quantity
        overlap = min(end, hour + timedelta(hours=1)) - max(start, hour)
        shares.append((hour, Fraction(quantity) * Fraction(overlap / timedelta(microseconds=1))
                       / Fraction((end - start) / timedelta(microseconds=1))))
        hour += timedelta(hours=1)
    assert [p.hour for p in parts] == [h for h, _ in shares]
    for part, (_, share) in zip(parts[:-1], shares):
        assert share - STEP < Fraction(part.quantity) <= share
    last = Fraction(parts[-1].quantity) - shares[-1][1]
    assert 0 <= last < STEP * len(parts)


def test_split_is_proportional_to_overlap():
    start = datetime(2026, 11, 1, 1, 30, tzinfo=UTC)
    parts = split_into_hours(start, start + timedelta(hours=2), Decimal("4"))
    assert [p.quantity for p in parts] == [Decimal("1"), Decimal("2"), Decimal("1")]


def test_slice_straddling_a_local_month_end_lands_in_both_months():
    start = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)  # 23:30 local, 30 November
    parts = split_into_hours(start, start + timedelta(hours=1), Decimal("1"))
    assert [(p.hour.hour, p.quantity) for p in parts] == [(15, Decimal("0.5")), (16, Decimal("0.5"))]


def test_thirds_are_rounded_down_with_the_remainder_on_the_last_part():
    start = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    parts = split_into_hours(start, start + timedelta(hours=3), Decimal("1"))
    assert [p.quantity for p in parts] == [Decimal("0.333333333"), Decimal("0.333333333"), Decimal("0.333333334")]
