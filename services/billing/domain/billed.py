"""What a bill charged, in the parts the budget basis (Art. 19) breaks spend into (pure).

A month's spend is its bill's total, as the bill charged it: the lines (each rounded to the fen, with the
per-information-system breakdown that adds up to the line), the late adjustments it carries for closed months
before it, and the manual adjustments posted to it (dispute credits included: an upheld dispute is an ordinary
adjustment). The same reading serves a final bill's stored JSON and a draft's document (render.bill_document)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

ZERO = Decimal(0)


@dataclass
class BilledMonth:
    by_meter: dict[str, Decimal] = field(default_factory=dict)  # the lines
    by_system: dict[str, Decimal] = field(default_factory=dict)  # the lines, by information system
    late_adjustments: Decimal = ZERO
    manual_adjustments: Decimal = ZERO

    @property
    def lines(self) -> Decimal:
        return sum(self.by_meter.values(), ZERO)

    @property
    def total(self) -> Decimal:
        return self.lines + self.late_adjustments + self.manual_adjustments


def billed_month(document: Mapping) -> BilledMonth:
    """The parts of one bill document (amounts are decimal strings in yuan)."""
    month = BilledMonth()
    systems: dict[str, Decimal] = defaultdict(Decimal)
    for line in document.get("lines", ()):
        month.by_meter[line["meter"]] = month.by_meter.get(line["meter"], ZERO) + Decimal(line["amount"])
        for part in line.get("systems", ()):
            systems[part["system"]] += Decimal(part["amount"])
    month.by_system = dict(systems)
    for adjustment in document.get("adjustments", ()):
        if adjustment.get("kind") == "late":
            month.late_adjustments += Decimal(adjustment["amount"])
        else:
            month.manual_adjustments += Decimal(adjustment["amount"])
    return month


def by_group(month: BilledMonth, view: str, family_of: Mapping[str, str]) -> dict[str, Decimal]:
    """The month's lines by service family (``view`` "family"; a meter not in the catalogue: "other") or by
    information system ("system"). Adjustments name no system, so they stay outside the groups in both views."""
    if view == "system":
        return dict(month.by_system)
    groups: dict[str, Decimal] = defaultdict(Decimal)
    for meter, amount in month.by_meter.items():
        groups[family_of.get(meter, "other")] += amount
    return dict(groups)
