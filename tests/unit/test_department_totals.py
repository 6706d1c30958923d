"""Usage by department summed in process from month totals (services/query/domain/department_totals.py): a
window's sums are the brute-force sums of its days (the month's own totals when it covers the month whole), and
only shapes the pieces answer exactly are answered from them. The bytes against PostgreSQL's own statement:
tests/integration/test_usage_pieces.py."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.common.periods import LOCAL_TZ, Month
from services.query.domain.department_totals import department_total_months, month_totals, window_sums

MONTH = Month(2071, 2)
DEPARTMENTS = st.sampled_from(["a", "b", "c.d", None])
AMOUNTS = st.decimals(min_value=0, max_value=10 ** 6, places=9, allow_nan=False)
DAILY = st.lists(st.tuples(st.integers(0, MONTH.days - 1), DEPARTMENTS, AMOUNTS, AMOUNTS, AMOUNTS), max_size=60)


@given(DAILY, st.integers(-3, MONTH.days + 3), st.integers(1, MONTH.days + 6))
def test_a_windows_sums_are_its_days_sums(daily, low, length):
    rows = [(MONTH.first_day + timedelta(days=d), dep, q, a, u) for d, dep, q, a, u in daily]
    whole = {}
    for _, dep, q, a, u in rows:
        whole.setdefault(dep, []).append((q, a, u))
    monthly = [(dep, sum(q for q, _, _ in v), sum(a for _, a, _ in v), sum(u for _, _, u in v))
               for dep, v in whole.items()]
    piece = month_totals(MONTH, monthly, rows)
    first = MONTH.first_day + timedelta(days=low)
    end = first + timedelta(days=length)
    expected: dict = {}
    for day, dep, q, a, u in rows:
        if first <= day < end:
            eq, ea, eu = expected.get(dep, (Decimal(0),) * 3)
            expected[dep] = (eq + q, ea + a, eu + u)
    assert window_sums(piece, first, end) == expected


def test_only_department_alone_by_month_or_in_total_on_local_midnights_is_summed_in_process():
    start, end = datetime(2071, 1, 17, tzinfo=LOCAL_TZ), datetime(2071, 3, 2, tzinfo=LOCAL_TZ)
    assert department_total_months(start, end, ("department",), "month", None) == [Month(2071, 1), Month(2071, 2),
                                                                                    Month(2071, 3)]
    assert department_total_months(start, end, ("department",), "total", None) is not None
    for groups, granularity, meter in [(("department", "meter"), "month", None), (("department",), "day", None),
                                       (("department",), "month", "compute.vcpu"), ((), "total", None)]:
        assert department_total_months(start, end, groups, granularity, meter) is None
    assert department_total_months(start.replace(hour=1), end, ("department",), "total", None) is None
    assert department_total_months(start, start.replace(year=2077), ("department",), "total", None) is None
    assert date(2071, 2, 1) == MONTH.first_day and MONTH.days == 28
