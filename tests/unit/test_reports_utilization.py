from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.metering.domain.utilization import (
    BUCKETS,
    Observation,
    bucket_of,
    hourly_utilization,
    merge_histograms,
    percentile,
)

D = Decimal
T0 = datetime(2060, 3, 1, 10, 30, tzinfo=UTC)


def test_an_observation_is_split_at_hour_boundaries_by_overlap():
    rows = hourly_utilization([Observation("vm-1", T0, T0 + timedelta(minutes=90), D("40"), D("70.5"))])
    first, second = rows[(T0.replace(minute=0), "vm-1")], rows[(T0.replace(minute=0) + timedelta(hours=1), "vm-1")]
    assert (first.observed_ms, second.observed_ms) == (1_800_000, 3_600_000)
    assert first.cpu_sum == 40 * 1_800_000 and second.memory_sum == D("70.5") * 3_600_000
    assert first.cpu_hist[40] == 1_800_000 and first.memory_hist[70] == 1_800_000
    assert (first.samples, first.cpu_max, first.memory_max) == (1, D(40), D("70.5"))


def test_observations_of_one_hour_add_up():
    hour = T0.replace(minute=0)
    rows = hourly_utilization([
        Observation("vm-1", hour, hour + timedelta(minutes=30), D("10"), D("20")),
        Observation("vm-1", hour + timedelta(minutes=30), hour + timedelta(hours=1), D("30"), D("20")),
    ])
    row = rows[(hour, "vm-1")]
    assert row.samples == 2 and row.observed_ms == 3_600_000
    assert row.cpu_sum / row.observed_ms == 20  # time-weighted average
    assert row.cpu_max == 30


def test_buckets_are_one_point_wide_and_100_percent_is_in_the_last():
    assert [bucket_of(D(v)) for v in ("0", "0.99", "1", "57.3", "99.99", "100")] == [0, 0, 1, 57, 99, 99]


def test_p95_interpolates_inside_its_bucket_and_never_exceeds_the_maximum():
    histogram = [0] * BUCKETS
    histogram[10] = 95
    histogram[80] = 5
    assert percentile(histogram) == D(11)  # the 95th percent of time lies at the top of bucket [10, 11)
    assert percentile(histogram, maximum=D("10.4")) == D("10.4")
    histogram[10] = 90
    histogram[80] = 10
    assert percentile(histogram) == D("80.5")
    assert percentile([0] * BUCKETS) is None


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=BUCKETS, max_size=BUCKETS),
       st.lists(st.integers(min_value=0, max_value=10_000), min_size=BUCKETS, max_size=BUCKETS))
def test_histograms_merge_exactly_and_p95_stays_within_the_observed_buckets(a, b):
    merged = merge_histograms([a, b])
    assert merged == [x + y for x, y in zip(a, b)]
    p95 = percentile(merged)
    if sum(merged) == 0:
        assert p95 is None
    else:
        used = [i for i, w in enumerate(merged) if w]
        assert used[0] <= p95 <= used[-1] + 1
