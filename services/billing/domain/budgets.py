"""Budget alerts (Art. 19): spend thresholds and the run-rate projection of a year's spend (pure).

Spend of a year = the totals of the department's bills for that year's periods: final bills as issued, open
periods' drafts as they stand (adjustments included where they are billed).

Projection, from the latest open period P of the year with usage, over the hours of P covered so far (up to
the end of the latest hour with usage): run rate = P's usage total × hours in P ÷ hours covered; projected
year = spend of the year's periods before P + P's adjustments + run rate × (1 + months of the year after P).
A projection needs at least ``min_hours`` covered (one early hour would project anything)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from schemas.money import round_fen, yuan_text

THRESHOLDS = (50, 80, 100)


@dataclass(frozen=True, slots=True)
class RunRate:
    period: str  # YYYY-MM
    usage_total: Decimal
    adjustments_total: Decimal
    spent_before: Decimal  # the year's periods before this one
    hours_covered: Decimal
    hours_in_period: Decimal


@dataclass(frozen=True, slots=True)
class AlertDue:
    kind: str  # spend_50 | spend_80 | spend_100 | projected_overrun
    period: str | None
    spend: Decimal
    projected: Decimal | None
    message: str


def projected_year_spend(rate: RunRate) -> Decimal:
    month = int(rate.period[5:7])
    monthly = rate.usage_total * rate.hours_in_period / rate.hours_covered
    return round_fen(rate.spent_before + rate.adjustments_total + monthly * (1 + 12 - month))


def budget_alerts(department_id: str, year: int, budget: Decimal, spend: Decimal, rate: RunRate | None,
                  min_hours: int) -> list[AlertDue]:
    """Every alert the figures call for now; storing each once (per kind and year, and per period for
    projections) is the caller's job."""
    due = []
    for threshold in THRESHOLDS:
        if spend * 100 >= budget * threshold:
            due.append(AlertDue(
                f"spend_{threshold}", None, spend, None,
                f"{department_id} {year} 年支出 {yuan_text(spend)} 元已达预算 {yuan_text(budget)} 元的 {threshold}% "
                f"(spend {yuan_text(spend)} reached {threshold}% of the {year} budget {yuan_text(budget)})",
            ))
    if rate is not None and rate.hours_covered >= min_hours:
        projected = projected_year_spend(rate)
        if projected > budget:
            due.append(AlertDue(
                "projected_overrun", rate.period, spend, projected,
                f"{department_id} 按 {rate.period} 的用量速度，{year} 年支出预计 {yuan_text(projected)} 元，超出预算 "
                f"{yuan_text(budget)} 元 (at the run rate of {rate.period}, {year} spend projects to "
                f"{yuan_text(projected)}, over the budget {yuan_text(budget)})",
            ))
    return due
