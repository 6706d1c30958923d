"""Data-complete watermarks: which sources hold a period (at the local month end, by the activity window), and
the worker's per-batch marks, which give the same row however a batch is split (the isolation's bisection)."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.events import RESOURCE_TYPE, USAGE_TYPE
from services.billing.domain.watermarks import SourceMark, is_active, override_record, sources_behind
from services.common.periods import LOCAL_TZ
from services.metering.event_store import IncomingEvent
from services.metering.watermarks import source_marks

MARCH_END = datetime(2026, 4, 1, tzinfo=LOCAL_TZ)  # 2026-03-31T16:00Z
NOW = datetime(2026, 4, 4, tzinfo=UTC)


def mark(source: str, complete_up_to: datetime | None, seen_days_ago: float = 1) -> SourceMark:
    return SourceMark(source, complete_up_to, NOW - timedelta(days=seen_days_ago), 1)


def test_a_source_holds_a_month_until_its_data_reaches_the_local_month_end():
    marks = [mark("exactly-at-end", MARCH_END), mark("a-microsecond-short", MARCH_END - timedelta(microseconds=1)),
             mark("utc-month-end-only", datetime(2026, 4, 1, tzinfo=UTC)),  # past the local end: complete
             mark("no-usage-ever", None), mark("past-it", MARCH_END + timedelta(days=3))]
    assert [m.source for m in sources_behind(marks, "2026-03", NOW, 14)] == ["a-microsecond-short"]
    assert [m.source for m in sources_behind(marks, "2026-04", NOW, 14)] == [
        "a-microsecond-short", "exactly-at-end", "past-it", "utc-month-end-only"]


def test_a_source_silent_for_the_activity_window_no_longer_holds():
    behind = MARCH_END - timedelta(days=7)
    assert is_active(mark("s", behind, seen_days_ago=13.9), NOW, 14)
    assert not is_active(mark("s", behind, seen_days_ago=14), NOW, 14)
    assert sources_behind([mark("s", behind, seen_days_ago=14)], "2026-03", NOW, 14) == []
    assert sources_behind([mark("s", behind, seen_days_ago=14)], "2026-03", NOW, 30) != []


def test_an_override_records_who_when_why_and_the_sources_behind():
    at = datetime(2026, 4, 5, 9, tzinfo=UTC)
    record = override_record("admin-li", at, "collector retired", [mark("hv-3", MARCH_END - timedelta(days=7))])
    assert record == {"by": "admin-li", "at": at.isoformat(), "reason": "collector retired", "sources_behind": [
        {"source": "hv-3", "complete_up_to": (MARCH_END - timedelta(days=7)).isoformat(),
         "last_seen_at": (NOW - timedelta(days=1)).isoformat(), "events": 1}]}


def incoming(source: str, kind: str, end_hours: int, number: int) -> IncomingEvent:
    end = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=end_hours)
    data = {"end": end} if kind == USAGE_TYPE else {"effective_at": end}
    return IncomingEvent({"type": kind, "source": source, "data": data}, b"{}", (source, str(number)),
                         (end.isoformat(), None, None))


events = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from([USAGE_TYPE, RESOURCE_TYPE]),
                            st.integers(0, 2000)), max_size=40).map(
    lambda items: [incoming(s, k, h, n) for n, (s, k, h) in enumerate(items)])


def upsert(row: dict, marks: dict) -> dict:
    """What the worker's upsert does to the stored rows: GREATEST of the marks (NULL ignored), sum of counts."""
    row = dict(row)
    for source, (end, count) in marks.items():
        old_end, old_count = row.get(source, (None, 0))
        row[source] = (max((e for e in (old_end, end) if e is not None), default=None), old_count + count)
    return row


@given(events, st.lists(st.integers(0, 40), max_size=6))
def test_marks_of_a_batch_split_anywhere_give_the_same_rows(batch, cuts):
    whole = upsert({}, source_marks(batch))
    bounds = [0, *sorted(c for c in cuts if c <= len(batch)), len(batch)]
    parts = {}
    for start, stop in zip(bounds, bounds[1:]):
        parts = upsert(parts, source_marks(batch[start:stop]))
    assert {s: r for s, r in parts.items() if r[1]} == whole
    assert all(end is None for s, (end, _) in whole.items()
               if all(i.event["type"] != USAGE_TYPE for i in batch if i.key[0] == s))
