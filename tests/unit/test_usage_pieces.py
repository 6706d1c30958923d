"""Month pieces of /v1/usage answers by the day (services/query/domain/usage_pieces.py): which queries they answer,
and that slicing and assembling them gives the rows of the window, in order, whatever the window."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.common.periods import LOCAL_TZ, Month
from services.query.domain.usage_pieces import assemble, bucket_key, encode_piece, piece_months, slice_piece

START = datetime(2025, 1, 1, tzinfo=LOCAL_TZ)


def at(day: int, hour: int = 0) -> datetime:
    return START + timedelta(days=day, hours=hour)


def test_pieces_answer_days_on_whole_days_and_never_resources():
    assert piece_months(at(16), at(92), ("meter",), "day") == [Month(2025, m) for m in (1, 2, 3, 4)]
    assert piece_months(at(0), at(31), (), "day") == [Month(2025, 1)]  # the end is exclusive
    assert piece_months(at(3, 5), at(40), ("meter",), "day") is None  # a day cut by the window
    for granularity in ("hour", "month", "total"):
        assert piece_months(at(0), at(365), ("meter",), granularity) is None
    assert piece_months(at(0), at(31), ("resource",), "day") is None
    assert piece_months(at(0), at(1830), ("meter",), "day") is None  # more than five years of pieces


def month_of_hours(month: Month, every: int) -> list[tuple[datetime, int]]:
    """A bucket every ``every`` hours of ``month``, holding (k % 3) + 1 rows."""
    hours = int((month.end - month.start).total_seconds() // 3600)
    return [(month.start + timedelta(hours=h), (h // every) % 3 + 1) for h in range(0, hours, every)]


def piece_of(buckets: list[tuple[datetime, int]]) -> bytes:
    return encode_piece([(bucket_key(t).decode(), n, ",".join(f'{{"t":"{bucket_key(t).decode()}","n":{i}}}'
                                                                  for i in range(n))) for t, n in buckets])


@given(st.integers(0, 24 * 120), st.integers(1, 24 * 120), st.sampled_from([1, 5, 24]))
def test_slices_of_the_months_assemble_to_exactly_the_buckets_inside_the_window(offset, length, every):
    begin, end = at(0, offset), at(0, offset + length)
    months = Month.of(begin).through(Month.of(end - timedelta(microseconds=1)))
    buckets = {month: month_of_hours(month, every) for month in months}
    low, high = bucket_key(begin), bucket_key(end)
    count, rows = assemble([slice_piece(piece_of(buckets[m]), low, high) for m in months])
    inside = [(t, n) for m in months for t, n in buckets[m] if begin <= t < end]
    assert count == sum(n for _, n in inside)
    expected = [f'{{"t":"{bucket_key(t).decode()}","n":{i}}}' for t, n in inside for i in range(n)]
    assert rows == ("[" + ",".join(expected) + "]").encode()


def test_an_empty_window_is_an_empty_array():
    assert assemble([slice_piece(encode_piece([]), bucket_key(at(0)), bucket_key(at(1)))]) == (0, b"[]")
