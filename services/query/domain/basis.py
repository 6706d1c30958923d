"""The budget basis (Art. 19): next year's IT budget proposed from measured spend. Pure.

For a department with monthly spend m₁ … mₙ (the trailing n = 12 months, oldest first):

    A          = Σ mₜ                                   actual spend of the 12 months
    b          = Σ (t − t̄)(mₜ − m̄) / Σ (t − t̄)²           least-squares trend, yuan per month
    projected  = Σ_{t=n+1}^{n+12} (m̄ + b (t − t̄))
               = 12 m̄ + b (6n + 72)                     the trend line continued over the next 12 months
    bounded    = min(max(projected, 0.8 A), 1.3 A)       a trend never moves the basis more than −20 % / +30 %
                                                         from what was actually spent
    W          = 12 × the monthly saving of the waste identified at the end of the window
    proposed   = max(0, bounded − W), rounded half-up to the fen

The bounds keep one unusual month (a migration, a one-off project) from running away with the basis; larger
changes need a justification outside this figure."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Mapping, Sequence

from schemas.money import round_fen

FLOOR_RATIO = Decimal("0.8")
CAP_RATIO = Decimal("1.3")


@dataclass(frozen=True)
class BudgetBasis:
    actual: Decimal
    monthly_mean: Decimal
    trend_per_month: Decimal
    projected: Decimal
    bounded: Decimal
    annual_waste: Decimal
    proposed: Decimal


def linear_trend(values: Sequence[Decimal]) -> Decimal:
    """Least-squares slope of values against t = 1 … n (0 for fewer than two values)."""
    n = len(values)
    if n < 2:
        return Decimal(0)
    t_mean = Decimal(n + 1) / 2
    v_mean = sum(values, Decimal(0)) / n
    numerator = sum(((t + 1) - t_mean) * (v - v_mean) for t, v in enumerate(values))
    denominator = sum(((t + 1) - t_mean) ** 2 for t in range(n))
    return numerator / denominator


def budget_basis(monthly: Sequence[Decimal], monthly_waste: Decimal = Decimal(0)) -> BudgetBasis:
    n = len(monthly)
    actual = sum(monthly, Decimal(0))
    mean = actual / n if n else Decimal(0)
    slope = linear_trend(monthly)
    projected = 12 * mean + slope * (6 * n + 72)
    bounded = min(max(projected, FLOOR_RATIO * actual), CAP_RATIO * actual)
    waste = 12 * monthly_waste
    proposed = round_fen(max(Decimal(0), bounded - waste))
    return BudgetBasis(actual, mean, slope, projected, bounded, waste, proposed)


def waste_by_department(findings: Iterable[Mapping]) -> tuple[dict[str, Decimal], dict[str, int]]:
    """Per department: the monthly saving of its waste findings, a resource counted once at its largest saving
    (a resource idle and oversized saves once), and how many findings it has."""
    waste: dict[str, Decimal] = defaultdict(Decimal)
    counted: dict[str, Decimal] = {}
    finding_count: dict[str, int] = defaultdict(int)
    for f in findings:
        saving = Decimal(f["monthly_saving"])
        finding_count[f["department_id"]] += 1
        previous = counted.get(f["resource_id"], Decimal(0))
        if saving > previous:
            waste[f["department_id"]] += saving - previous
            counted[f["resource_id"]] = saving
    return dict(waste), dict(finding_count)
