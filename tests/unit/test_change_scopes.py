"""Which cached answers a change notification drops (services/common/response_cache.py): pure."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.common.periods import LOCAL_TZ, Month, months_spanning, months_touching
from services.common.response_cache import (
    EVERYTHING,
    FINER_ROLLUPS,
    USAGE_TABLES,
    Change,
    Reads,
    affects,
    parse_change,
)
from services.projection.rollups import COARSE_ROLLUPS

MONTHS = st.sampled_from([f"2025-{m:02d}" for m in range(1, 13)])
DEPARTMENTS = st.sampled_from(["dep-a", "dep-b", "dep-c"])
CHANGES = st.dictionaries(MONTHS, st.one_of(st.none(), st.frozensets(st.one_of(st.none(), DEPARTMENTS), min_size=1)),
                          min_size=1)
READS = st.builds(Reads, tables=st.just(frozenset()), usage=st.just(True),
                  months=st.one_of(st.none(), st.frozensets(MONTHS, min_size=1)),
                  departments=st.one_of(st.none(), st.frozensets(DEPARTMENTS, min_size=1)))


def test_the_caches_know_every_usage_rollup_the_worker_writes():
    # services/common cannot import the projection (the layering): the two lists are held together here
    assert USAGE_TABLES == {"usage_hourly", *(rollup.table for rollup in COARSE_ROLLUPS)}
    assert "usage_monthly" in USAGE_TABLES - FINER_ROLLUPS  # the one whose notifications are scoped


def test_payloads_read_as_bare_tables_scoped_usage_or_everything():
    assert parse_change("bills") == Change("bills")
    assert parse_change('{"t": "usage_monthly", "m": {"2025-03": ["dep-a", null]}}') == Change(
        "usage_monthly", {"2025-03": frozenset({"dep-a", None})})
    assert parse_change('{"t": "usage_monthly", "m": {"2025-03": "*"}}') == Change("usage_monthly", {"2025-03": None})
    assert parse_change('{"t": "usage_daily", "m": "*"}') == Change("usage_daily")
    assert parse_change('{"t": "usage_monthly", "m": [1]}') == EVERYTHING
    assert parse_change("{not json") == EVERYTHING


@given(CHANGES, READS)
def test_a_usage_change_drops_an_answer_exactly_when_it_touched_one_of_its_months_and_departments(months, reads):
    touched = {(m, d) for m, ds in months.items() for d in (ds if ds is not None else {"*"})}
    expected = any((reads.months is None or m in reads.months)
                   and (d == "*" or reads.departments is None or d in reads.departments) for m, d in touched)
    assert affects(Change("usage_monthly", months), reads) == expected


@given(READS)
def test_any_month_anything_and_unread_tables(reads):
    assert affects(Change("usage_monthly"), reads) and affects(EVERYTHING, reads)
    assert not affects(Change("bills"), reads)
    assert affects(Change("bills"), Reads(frozenset({"bills"})))
    assert not affects(Change("usage_monthly", {"2025-01": None}), Reads(frozenset({"bills"})))


def test_unattributed_usage_drops_only_answers_about_every_department():
    change = Change("usage_monthly", {"2025-01": frozenset({None})})
    assert affects(change, Reads(usage=True))
    assert not affects(change, Reads(usage=True, departments=frozenset({"dep-a"})))


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
       st.integers(min_value=1, max_value=24 * 800))
def test_the_months_a_window_touches_are_the_months_of_its_hours(start, hours):
    start = start.replace(minute=0, second=0, microsecond=0, tzinfo=LOCAL_TZ)
    end = start + timedelta(hours=hours)
    found = months_touching(start, end)
    assert str(Month.of(start)) in found and str(Month.of(end - timedelta(hours=1))) in found
    assert found == {str(Month.of(start + timedelta(hours=h))) for h in range(0, hours, 24)} | {
        str(Month.of(end - timedelta(hours=1)))}
    assert [str(month) for month in months_spanning(start, end, 240)] == sorted(found)  # in order
    assert months_touching(start, start + timedelta(days=366 * 30)) is None


async def test_the_change_log_is_trimmed_to_the_oldest_running_computation():
    """Under steady traffic some computation is always running: the log of changes must not grow for ever, and an
    answer computed while a change it read came is still not stored."""
    import asyncio

    from services.common.response_cache import ResponseCache

    cache = ResponseCache(tables=("bills",))
    cache._listening, cache._conn = True, type("Open", (), {"is_closed": lambda self: False})()
    cache._caught_up = _true
    loop = asyncio.get_running_loop()
    first, second, third = (loop.create_future() for _ in range(3))
    a = asyncio.ensure_future(cache.serve("a", lambda: first))
    b = asyncio.ensure_future(cache.serve("b", lambda: second))
    await asyncio.sleep(0)
    for _ in range(50):
        cache.apply(Change("bills"))
    c = asyncio.ensure_future(cache.serve("c", lambda: third))  # begins after the changes
    await asyncio.sleep(0)
    first.set_result(b"a")
    await a
    assert len(cache._log) == 50  # b began before them and is still running
    second.set_result(b"b")
    await b
    assert cache._log == [] and "c" in cache._flights  # trimmed although c still runs: c began after them
    third.set_result(b"c")
    await c
    assert set(cache._entries) == {"c"}  # a and b read what changed while they ran: not stored


async def _true():
    return True
