"""``/v1/usage`` by department alone (by month or in total) over whole local days, summed in process from one
cached piece a month. Pure: the pieces' rows come from ``services.query.views.department_month_totals``.

The statement over the window (``views.usage_report_sql``) sums the monthly rollup for the months the window
covers whole and the daily department totals for the days of the months it cuts. A *piece* holds, for one local
month and scope, exactly those two sources: each department's month totals (``usage_monthly``) and its running
totals by day (``usage_department_totals_daily``). Any window is then a few subtractions a department and month:
finance's "spend by department" and "top departments" over a never-asked window cost no statement once last
year's months are cached, and a worker commit, which touches today's month, keeps them.

The answer is the statement's, to the byte: numeric sums are exact here as there (the EXACT context), quantities
are written as ``trim_scale(q)::text`` and amounts as ``round(a, 2)::text`` (half away from zero), rows in the
statement's order (bucket, then department id in code-point order, unattributed last: the statement orders by
``COLLATE "C"``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from schemas.money import EXACT
from services.common.periods import Month, is_local_midnight, months_spanning

Sums = tuple[Decimal, Decimal, Decimal]  # quantity, amount, unpriced quantity
_ZERO: Sums = (Decimal(0), Decimal(0), Decimal(0))
_HUNDREDTH = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class MonthTotals:
    """One local month of one scope: ``whole`` the month's own totals per department (None: unattributed);
    ``running[d][i]`` department d's sums over the month's first i days, with the number of daily rows, for i in
    0..days. A department is in a window's month if it has a row there (a monthly row for the whole month)."""

    month: Month
    whole: dict[str | None, Sums]
    running: dict[str | None, list[tuple[Sums, int]]]
    whole_rows: bytes  # the month's rows by month when a window covers it whole, written once

    @property
    def nbytes(self) -> int:
        """Roughly what it holds, for the response cache's budget (~100 bytes a Decimal)."""
        days = sum(len(sums) for sums in self.running.values())
        return 64 + 320 * len(self.whole) + 400 * days + len(self.whole_rows)


def month_totals(month: Month, monthly: Iterable[tuple[str | None, Decimal, Decimal, Decimal]],
                 daily: Iterable[tuple[date, str | None, Decimal, Decimal, Decimal]]) -> MonthTotals:
    """A piece from the month's monthly rows (department, quantity, amount, unpriced; summed over meters here) and
    its daily department totals (day, department, quantity, amount, unpriced)."""
    whole: dict[str | None, Sums] = {}
    for department, q, a, u in monthly:
        wq, wa, wu = whole.get(department, _ZERO)
        whole[department] = (EXACT.add(wq, q), EXACT.add(wa, a), EXACT.add(wu, u))
    first, days = month.first_day, month.days
    by_day: dict[str | None, list[tuple[Sums, int]]] = {}
    for day, department, q, a, u in daily:
        cells, at = by_day.setdefault(department, [(_ZERO, 0)] * days), (day - first).days
        (cq, ca, cu), n = cells[at]
        cells[at] = ((EXACT.add(cq, q), EXACT.add(ca, a), EXACT.add(cu, u)), n + 1)
    running: dict[str | None, list[tuple[Sums, int]]] = {}
    for department, cells in by_day.items():
        total, rows, out = _ZERO, 0, [(_ZERO, 0)]
        for (q, a, u), n in cells:
            total = (EXACT.add(total[0], q), EXACT.add(total[1], a), EXACT.add(total[2], u))
            rows += n
            out.append((total, rows))
        running[department] = out
    start = _month_start(month)
    whole_rows = b",".join(_row(start, d, whole[d]) for d in sorted(whole, key=_department_order))
    return MonthTotals(month, whole, running, whole_rows)


def _month_start(month: Month) -> str:
    # as the statement writes a bucket: "+08:00" literally (not Month.start's offset, +09:00 in China's summers
    # of 1986-1991)
    return f"{month.first_day.isoformat()}T00:00:00+08:00"


def _covers(month: Month, first: date, end: date) -> bool:
    """Whether the local days [first, end) hold the whole of ``month``."""
    return first <= month.first_day and month.next().first_day <= end


def department_total_months(start: datetime, end: datetime, group_by: tuple[str, ...], granularity: str,
                            meter: str | None, most: int = 60) -> list[Month] | None:
    """The months whose pieces answer [start, end) by department alone, by month or in total, or None when
    pieces do not answer it: another grouping or granularity, one meter, a window not on local midnights, or more
    than ``most`` months."""
    if (group_by != ("department",) or granularity not in ("month", "total") or meter is not None
            or not (is_local_midnight(start) and is_local_midnight(end)) or start >= end):
        return None
    return months_spanning(start, end, most)


def window_sums(piece: MonthTotals, first: date, end: date) -> dict[str | None, Sums]:
    """Each department's sums over the days of [first, end) in the piece's month (the month's own totals when the
    window covers it whole), for the departments with a row there."""
    if _covers(piece.month, first, end):
        return dict(piece.whole)
    month_first, days = piece.month.first_day, piece.month.days
    low, high = max(0, (first - month_first).days), min(days, (end - month_first).days)
    found: dict[str | None, Sums] = {}
    if low >= high:
        return found
    for department, sums in piece.running.items():
        (before, rows_before), (through, rows_through) = sums[low], sums[high]
        if rows_through > rows_before:
            found[department] = (EXACT.subtract(through[0], before[0]), EXACT.subtract(through[1], before[1]),
                                 EXACT.subtract(through[2], before[2]))
    return found


def _department_order(department: str | None) -> tuple[bool, str]:
    return department is None, department or ""


def trim_scale_text(value: Decimal) -> str:
    """PostgreSQL's ``trim_scale(value)::text``: no trailing fractional zeros, never an exponent."""
    if value.is_zero():
        return "0"
    return format(value.normalize(EXACT), "f")


def round_text(value: Decimal) -> str:
    """PostgreSQL's ``round(value, 2)::text`` (half away from zero, always two places)."""
    rounded = value.quantize(_HUNDREDTH, rounding=ROUND_HALF_UP, context=EXACT)
    return format(rounded if not rounded.is_zero() else abs(rounded), "f")


def _row(period_start: str, department: str | None, sums: Sums) -> bytes:
    q, a, u = sums
    name = "null" if department is None else f'"{department}"'  # department ids need no escaping (DepartmentId)
    unpriced = f',"unpriced_quantity":"{trim_scale_text(u)}"' if not u.is_zero() else ""
    return (f'{{"period_start":"{period_start}","department_id":{name},"quantity":"{trim_scale_text(q)}",'
            f'"amount":"{round_text(a)}"{unpriced}}}').encode()


def department_rows(pieces: Sequence[MonthTotals], first: date, end: date, granularity: str,
                    total_start: str) -> tuple[int, list[bytes]]:
    """The answer's row count and rows (JSON objects, comma-joined within a part) over the local days
    [first, end): one per month and department by ``month``, one per department in total (``total_start``: the
    window's start as the statement writes it)."""
    if granularity == "month":
        count, parts = 0, []
        for piece in pieces:
            if _covers(piece.month, first, end):
                count, part = count + len(piece.whole), piece.whole_rows
            else:
                sums = window_sums(piece, first, end)
                start = _month_start(piece.month)
                count, part = count + len(sums), b",".join(_row(start, d, sums[d])
                                                           for d in sorted(sums, key=_department_order))
            if part:
                parts.append(part)
        return count, parts
    totals: dict[str | None, Sums] = {}
    for piece in pieces:
        for department, (q, a, u) in window_sums(piece, first, end).items():
            tq, ta, tu = totals.get(department, _ZERO)
            totals[department] = (EXACT.add(tq, q), EXACT.add(ta, a), EXACT.add(tu, u))
    return len(totals), [_row(total_start, d, totals[d]) for d in sorted(totals, key=_department_order)]
