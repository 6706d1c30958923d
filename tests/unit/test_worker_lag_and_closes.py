"""The worker lag's arithmetic (log-end offset minus the group's position) and a close's duration."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.billing.closes import close_duration
from services.metering.lag import Offsets, lag_report, partition_lag

NOW = datetime(2086, 3, 1, tzinfo=UTC)


@st.composite
def offsets(draw) -> Offsets:
    start = draw(st.integers(0, 10**12))
    end = draw(st.integers(start, start + 10**9))
    committed = draw(st.none() | st.integers(0, end + 10))
    return Offsets(start, end, committed)


def test_lag_is_the_log_end_minus_the_committed_offset():
    assert partition_lag(Offsets(start=0, end=120, committed=100)) == 20
    assert partition_lag(Offsets(start=0, end=120, committed=120)) == 0


def test_without_a_commit_the_whole_log_is_lag_because_the_worker_starts_at_the_earliest():
    assert partition_lag(Offsets(start=0, end=25, committed=None)) == 25
    assert partition_lag(Offsets(start=40, end=65, committed=None)) == 25


def test_a_commit_below_the_logs_start_counts_only_the_records_still_in_the_log():
    assert partition_lag(Offsets(start=500, end=520, committed=10)) == 20


@given(offsets())
def test_lag_is_never_negative_nor_more_than_the_records_in_the_log(o):
    assert 0 <= partition_lag(o) <= o.end - o.start


@given(st.dictionaries(st.tuples(st.sampled_from(["e", "r"]), st.integers(0, 7)), offsets(), max_size=8))
def test_the_total_is_the_sum_of_the_partitions_listed_in_topic_and_partition_order(partitions):
    report = lag_report("g", partitions, NOW)
    assert report.total == sum(p.lag for p in report.partitions) == sum(map(partition_lag, partitions.values()))
    assert [(p.topic, p.partition) for p in report.partitions] == sorted(partitions)


def test_a_close_lasts_from_its_start_to_its_finish_in_seconds_to_the_millisecond():
    assert close_duration(NOW, NOW + timedelta(seconds=2, microseconds=345_600)) == 2.346
    assert close_duration(NOW, NOW) == 0


def test_a_close_recorded_before_its_start_and_finish_were_kept_has_no_duration():
    assert close_duration(None, NOW) is None and close_duration(NOW, None) is None
