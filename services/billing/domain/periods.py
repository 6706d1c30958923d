"""Billing periods: calendar months in Asia/Shanghai, when they close, and where late changes go (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Collection, Iterable

from services.common.periods import Month, month_bounds, next_month, previous_month


def has_ended(period: str, now: datetime) -> bool:
    return now >= month_bounds(period)[1]


def closes_at(period: str, grace_days: int) -> datetime:
    """When a period closes by itself: ``grace_days`` local days after its month ends (local midnight)."""
    return month_bounds(period)[1] + timedelta(days=grace_days)


def due_periods(candidates: Iterable[str], closed: Collection[str], now: datetime, grace_days: int) -> list[str]:
    """The open periods among ``candidates`` whose grace has passed at ``now``, oldest first."""
    return sorted(p for p in set(candidates) if p not in closed and now >= closes_at(p, grace_days))


def next_open_period(period: str, closed: Collection[str]) -> str:
    """The first period after ``period`` that is still open: where late changes to ``period`` are billed."""
    following = next_month(period)
    while following in closed:
        following = next_month(following)
    return following


def open_periods_after_closed(closed: Collection[str]) -> set[str]:
    """Where every closed period's late changes go: ``{next_open_period(p, closed) for p in closed}``, in one pass
    (each is an open period whose previous month is closed; walking from every closed period was quadratic in the
    months kept, ~2,500 steps for a bill list at five years)."""
    following = {next_month(period) for period in closed}
    return following - set(closed)


def closed_run_before(period: str, closed: Collection[str]) -> list[str]:
    """The closed periods whose late changes the bill of open ``period`` carries (oldest first): those with no
    open period between them and ``period``."""
    run = []
    earlier = previous_month(period)
    while earlier in closed:
        run.append(earlier)
        earlier = previous_month(earlier)
    return run[::-1]


def year_periods(year: int) -> list[str]:
    return [str(month) for month in Month(year, 12).trailing(12)]
