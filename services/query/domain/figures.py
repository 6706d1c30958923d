"""The figures the reports add up (pure): usage and cost, utilisation statistics, allocated capacity, and the
prices a saving is counted at."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.metering.domain.rating import RateCardPrices, card_at
from services.metering.domain.utilization import BUCKETS, percentile


@dataclass
class UsageFigure:
    quantity: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)
    unpriced_quantity: Decimal = Decimal(0)

    def add(self, quantity: Decimal, amount: Decimal, unpriced: Decimal = Decimal(0)) -> None:
        self.quantity += quantity
        self.amount += amount
        self.unpriced_quantity += unpriced


@dataclass
class UtilizationFigures:
    observed_ms: int = 0
    cpu_sum: Decimal = Decimal(0)
    memory_sum: Decimal = Decimal(0)
    cpu_max: Decimal | None = None
    memory_max: Decimal | None = None
    cpu_hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    memory_hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    @property
    def cpu_average(self) -> Decimal | None:
        return self.cpu_sum / self.observed_ms if self.observed_ms else None

    @property
    def memory_average(self) -> Decimal | None:
        return self.memory_sum / self.observed_ms if self.observed_ms else None

    @property
    def cpu_p95(self) -> Decimal | None:
        return percentile(self.cpu_hist, maximum=self.cpu_max)

    @property
    def memory_p95(self) -> Decimal | None:
        return percentile(self.memory_hist, maximum=self.memory_max)


# Allocated capacity: spec fields read from lifecycle specs, averaged over the period by the time they were held.
CAPACITY_FIELDS = {"vcpu": "vcpu", "memory_gib": "memory_gib", "storage_gib": "size_gib"}


@dataclass
class Allocation:
    resources: set[str] = field(default_factory=set)
    capacity: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))


def spec_number(spec: dict, key: str) -> Decimal | None:
    value = spec.get(key) if isinstance(spec, dict) else None
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def time_weighted_allocations(rows, start: datetime, end: datetime) -> dict[tuple, Allocation]:
    """Per (department_id, system) of ownership intervals: the resources held at any time in [start, end) and
    the time-weighted average allocated capacity (Σ spec value × hours held in the period ÷ hours in the period)."""
    period = Decimal((end - start).total_seconds())
    result: dict[tuple, Allocation] = defaultdict(Allocation)
    for r in rows:
        held = min(r["valid_to"] or end, end) - max(r["valid_from"], start)
        target = result[(r["department_id"], r["system"])]
        target.resources.add(r["resource_id"])
        for name, key in CAPACITY_FIELDS.items():
            value = spec_number(r["spec"], key)
            if value is not None:
                target.capacity[name] += value * Decimal(held.total_seconds()) / period
    return dict(result)


def current_prices(cards: list[RateCardPrices], instant: datetime) -> dict[str, Decimal]:
    """Unit prices in force at ``instant``; a graduated price counts at its lowest tier (never overstates)."""
    card = card_at(cards, instant)
    if card is None:
        return {}
    prices = dict(card.flat)
    for meter, tiers in card.tiered.items():
        prices[meter] = min(t.unit_price for t in tiers)
    return prices
