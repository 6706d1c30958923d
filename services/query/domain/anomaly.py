"""Spend anomalies (Art. 12(2)): a department's daily spend on a meter against its own trailing baseline.

Method (robust z-score, Iglewicz and Hoaglin): over the ``window_days`` local days before the day judged
(days without usage count as 0 yuan),

    median  = median of the baseline
    MAD     = median of |baseline − median|
    MAD'    = max(MAD, floor_ratio × |median|, floor_yuan)     (a floor, so a perfectly steady spend — MAD = 0 —
                                                                does not warn on every fen of change)
    z       = 0.6745 × (spend − median) / MAD'

and the day is an outlier when z > threshold (3.5). Only increases warn; a baseline with fewer than
``min_active_days`` days of spend is too short to judge (a department or meter that just started)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Sequence

MAD_SCALE = Decimal("0.6745")  # Φ⁻¹(0.75): makes MAD comparable with a standard deviation for normal data


@dataclass(frozen=True)
class AnomalyRule:
    window_days: int = 14
    threshold: Decimal = Decimal("3.5")
    min_active_days: int = 7
    floor_ratio: Decimal = Decimal("0.05")
    floor_yuan: Decimal = Decimal("0.01")


@dataclass(frozen=True)
class Anomaly:
    spend: Decimal
    median: Decimal
    mad: Decimal
    mad_used: Decimal
    robust_z: Decimal
    threshold: Decimal


def median(values: Sequence[Decimal]) -> Decimal:
    if not values:
        raise ValueError("median of nothing")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def spend_anomaly(baseline: Sequence[Decimal], spend: Decimal, rule: AnomalyRule = AnomalyRule()) -> Anomaly | None:
    """The anomaly if ``spend`` is an outlier above ``baseline`` (daily spends, oldest first), else None."""
    if sum(1 for value in baseline if value != 0) < rule.min_active_days:
        return None
    center = median(baseline)
    mad = median([abs(value - center) for value in baseline])
    mad_used = max(mad, rule.floor_ratio * abs(center), rule.floor_yuan)
    z = MAD_SCALE * (spend - center) / mad_used
    if z <= rule.threshold:
        return None
    return Anomaly(spend, center, mad, mad_used, z, rule.threshold)


def judge_day(day: date, spend: dict[tuple[str, str, date], Decimal],
              rule: AnomalyRule = AnomalyRule()) -> list[tuple[str, str, Anomaly, list[Decimal]]]:
    """The outliers of ``day`` among daily spends keyed (department, meter, day)."""
    window = [day - timedelta(days=n) for n in range(rule.window_days, 0, -1)]
    found = []
    for department, meter in sorted({(d, m) for d, m, x in spend if x == day}):
        baseline = [spend.get((department, meter, past), Decimal(0)) for past in window]
        anomaly = spend_anomaly(baseline, spend[(department, meter, day)], rule)
        if anomaly is not None:
            found.append((department, meter, anomaly, baseline))
    return found
