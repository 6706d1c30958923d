"""A department's bill for a period: usage priced into lines, late and manual adjustments, totals (pure).

Flat-priced usage is already priced exactly in the rollups; graduated (tiered) prices are applied here, over the
department's month-to-date quantity of the meter, slice by slice in time order. Each line's exact amount is
rounded once, half-up to the fen; the bill's total is the sum of its rounded lines and adjustments."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Iterable, Mapping, Sequence

from schemas.money import FEN, exact, round_fen
from services.common.periods import parse_month
from services.metering.domain.rating import RateCardPrices, Tier, graduated_charge

ZERO = Decimal(0)
_EARLIEST = datetime.min.replace(tzinfo=None)
BILL_NUMBER = re.compile(r"^GM-([^-]+-[^-]+)-(.+)$")


def bill_number(period: str, department_id: str) -> str:
    """The bill's number, also its id: ``GM-2026-11-czj``."""
    return f"GM-{period}-{department_id}"


def parse_bill_number(bill_id: str) -> tuple[str, str] | None:
    """(period, department_id) of a bill number, or None if it is not one."""
    match = BILL_NUMBER.fullmatch(bill_id)
    if match is None:
        return None
    try:
        parse_month(match.group(1))
    except ValueError:
        return None
    return match.group(1), match.group(2)


@dataclass(frozen=True, slots=True)
class UsageSlice:
    """A department's rated usage as the rollups hold it, for one meter, rate card and information system.

    ``hour`` orders the slices of meters that have tiers; it may be None for a meter that no rate card prices
    in tiers (order cannot change its charge), which lets the caller sum those in SQL."""

    hour: datetime | None
    meter: str
    rate_card_id: int  # 0: no card was in force
    system: str
    quantity: Decimal
    amount: Decimal  # exact yuan of the flat-priced part
    unpriced_quantity: Decimal
    # In a resource's trial (试运行) window: the fraction of the normal price it is billed at; None: not a trial.
    trial_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TierApplied:
    up_to: Decimal | None
    unit_price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class PriceApplied:
    """What one rate card priced on a line: a flat unit price, or its tiers with the quantity in each."""

    rate_card_id: int
    rate_card: str  # version
    effective_from: datetime
    quantity: Decimal
    unit_price: Decimal | None = None
    tiers: tuple[TierApplied, ...] | None = None


@dataclass(frozen=True, slots=True)
class SystemLine:
    system: str
    quantity: Decimal
    amount: Decimal  # fen; the systems of a line add up to the line


@dataclass(frozen=True, slots=True)
class BillLine:
    meter: str
    quantity: Decimal
    unpriced_quantity: Decimal
    exact_amount: Decimal
    amount: Decimal  # exact_amount rounded half-up to the fen
    prices: tuple[PriceApplied, ...]  # the normal prices; a trial line is billed at trial_rate times them
    systems: tuple[SystemLine, ...]
    trial_rate: Decimal | None = None  # a trial (试运行) line: the usage in trial windows billed at this rate


@dataclass(frozen=True, slots=True)
class LateAdjustment:
    """A change to a closed period's figures, carried by a later bill."""

    original_period: str
    meter: str
    quantity: Decimal
    amount: Decimal  # fen
    reason: str


@dataclass(frozen=True, slots=True)
class ManualAdjustment:
    id: int
    amount: Decimal  # fen; negative: a credit
    reason: str
    reference: str | None
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Bill:
    bill_id: str
    period: str
    department_id: str
    department_name: str
    status: str  # draft | final
    lines: tuple[BillLine, ...]
    late_adjustments: tuple[LateAdjustment, ...] = ()
    manual_adjustments: tuple[ManualAdjustment, ...] = ()
    as_of: datetime | None = None  # final: when the period closed; draft: when computed
    closed_at: datetime | None = None

    @property
    @exact
    def usage_total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    @exact
    def adjustments_total(self) -> Decimal:
        return sum((a.amount for a in self.late_adjustments), ZERO) + sum(
            (a.amount for a in self.manual_adjustments), ZERO
        )

    @property
    @exact
    def total(self) -> Decimal:
        return self.usage_total + self.adjustments_total

    @property
    def is_empty(self) -> bool:
        return not (self.lines or self.late_adjustments or self.manual_adjustments)


# --- pricing ----------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Segment:
    quantity: Decimal = ZERO
    tier_quantities: list[Decimal] | None = None


@dataclass(slots=True)
class _Charge:
    quantity: Decimal = ZERO
    unpriced_quantity: Decimal = ZERO
    amount: Decimal = ZERO
    systems: dict[str, list[Decimal]] = field(default_factory=dict)  # system → [quantity, exact amount]
    segments: dict[int, _Segment] = field(default_factory=dict)


@exact
def tier_quantities(tiers: Sequence[Tier], position: Decimal, quantity: Decimal) -> list[Decimal]:
    """How much of ``quantity`` more units, after ``position`` this month, falls into each tier."""
    result = []
    lower = ZERO
    end = position + quantity
    for tier in tiers:
        upper = tier.up_to
        inside = (end if upper is None else min(end, upper)) - max(lower, position)
        result.append(max(inside, ZERO))
        if upper is not None:
            lower = upper
    return result


@exact
def price_usage(slices: Iterable[UsageSlice], cards: Mapping[int, RateCardPrices]) -> list[BillLine]:
    """Bill lines, one per meter, for a department's usage in one period.

    Tiered slices are charged ``graduated_charge(tiers, position, quantity)`` where ``position`` is the meter's
    quantity so far this month (all of it, whichever card or system it came from), taking slices in order of
    hour, then the effective date of their card, then system. The order of ``slices`` and how a slice's quantity
    is split into several slices do not change any line."""
    return _price_usage(slices, cards)


def _price_usage(slices: Iterable[UsageSlice], cards: Mapping[int, RateCardPrices]) -> list[BillLine]:
    def order(s: UsageSlice):
        card = cards.get(s.rate_card_id)
        when = _naive_utc(card.effective_from) if card else _EARLIEST
        trial = (s.trial_rate is not None, s.trial_rate or ZERO)
        return (s.meter, _naive_utc(s.hour) if s.hour else _EARLIEST, when, s.rate_card_id, s.system, trial)

    # Trial usage takes its place in the month's tier position like any usage (so a trial line is exactly its
    # rate times what the usage costs, and the normal lines do not depend on the rate); it is charged on a line
    # of its own per meter and rate.
    charges: dict[tuple[str, Decimal | None], _Charge] = {}
    positions: dict[str, Decimal] = {}
    for s in sorted(slices, key=order):
        charge = charges.setdefault((s.meter, s.trial_rate), _Charge())
        card = cards.get(s.rate_card_id)
        tiers = card.tiered.get(s.meter) if card else None
        position = positions.get(s.meter, ZERO)
        if tiers is not None:
            priced = s.quantity - s.unpriced_quantity
            amount = graduated_charge(tiers, position + s.unpriced_quantity, priced)
            segment = charge.segments.setdefault(s.rate_card_id, _Segment(tier_quantities=[ZERO] * len(tiers)))
            segment.quantity += priced
            for index, part in enumerate(tier_quantities(tiers, position + s.unpriced_quantity, priced)):
                segment.tier_quantities[index] += part  # type: ignore[index]
        else:
            amount = s.amount
            if card is not None and s.meter in card.flat:
                charge.segments.setdefault(s.rate_card_id, _Segment()).quantity += s.quantity - s.unpriced_quantity
        if s.trial_rate is not None:
            amount *= s.trial_rate
        positions[s.meter] = position + s.quantity
        charge.quantity += s.quantity
        charge.unpriced_quantity += s.unpriced_quantity
        charge.amount += amount
        per_system = charge.systems.setdefault(s.system, [ZERO, ZERO])
        per_system[0] += s.quantity
        per_system[1] += amount
    keys = sorted(charges, key=lambda key: (key[0], key[1] is not None, key[1] or ZERO))
    return [_line(meter, charges[meter, rate], cards, rate) for meter, rate in keys]


def _naive_utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(tzinfo=None)


def _line(meter: str, charge: _Charge, cards: Mapping[int, RateCardPrices], trial_rate: Decimal | None) -> BillLine:
    amount = round_fen(charge.amount)
    systems = sorted(charge.systems.items())
    shares = allocate_fen(amount, [exact for _, (_, exact) in systems])
    prices = []
    for card_id, segment in sorted(charge.segments.items(), key=lambda item: cards[item[0]].effective_from):
        if segment.quantity == 0:
            continue
        card = cards[card_id]
        if segment.tier_quantities is None:
            prices.append(PriceApplied(card.id, card.version, card.effective_from, segment.quantity,
                                       unit_price=card.flat[meter]))
        else:
            tiers = tuple(TierApplied(t.up_to, t.unit_price, q)
                          for t, q in zip(card.tiered[meter], segment.tier_quantities))
            prices.append(PriceApplied(card.id, card.version, card.effective_from, segment.quantity, tiers=tiers))
    return BillLine(
        meter=meter,
        quantity=charge.quantity,
        unpriced_quantity=charge.unpriced_quantity,
        exact_amount=charge.amount,
        amount=amount,
        prices=tuple(prices),
        systems=tuple(SystemLine(name, quantity, share) for (name, (quantity, _)), share in zip(systems, shares)),
        trial_rate=trial_rate,
    )


@exact
def allocate_fen(total: Decimal, exact_parts: Sequence[Decimal]) -> list[Decimal]:
    """Split a rounded ``total`` over exact parts so the shares add up to it to the fen (largest remainder:
    every part floored to the fen, the fens left over go to the largest remainders, earlier parts first on a
    tie). Each share is within one fen of its exact part when ``total`` is the rounded sum of the parts."""
    floors = [part.quantize(FEN, rounding=ROUND_FLOOR) for part in exact_parts]
    left = int((total - sum(floors, ZERO)) / FEN)
    order = sorted(range(len(exact_parts)), key=lambda i: (-(exact_parts[i] - floors[i]), i))
    shares = list(floors)
    if left >= 0:
        for i in order[:left]:
            shares[i] += FEN
    else:  # only when total is not the rounded sum; keep the shares adding up regardless
        for i in order[::-1][: -left]:
            shares[i] -= FEN
    return shares


# --- adjustments for closed periods -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settled:
    """What has been billed for one meter of a closed period so far: its final bill's line plus the late
    adjustments already frozen into later final bills."""

    quantity: Decimal
    amount: Decimal


@exact
def settled_figures(final_lines: Iterable[tuple[str, Decimal, Decimal]],
                    frozen: Iterable[tuple[str, Decimal, Decimal]]) -> dict[str, Settled]:
    """(meter, quantity, amount) rows of a final bill and of frozen late adjustments → settled per meter."""
    totals: dict[str, list[Decimal]] = {}
    for meter, quantity, amount in [*final_lines, *frozen]:
        pair = totals.setdefault(meter, [ZERO, ZERO])
        pair[0] += quantity or ZERO
        pair[1] += amount
    return {meter: Settled(q, a) for meter, (q, a) in totals.items()}


@exact
def late_adjustments(original_period: str, recomputed: Sequence[BillLine], settled: Mapping[str, Settled],
                     repriced_by: Sequence[str] = ()) -> list[LateAdjustment]:
    """The adjustments a closed period needs now: per meter, what it comes to today minus what was billed.

    Adding them to what was billed gives today's figures exactly, so nothing is lost and, once they are frozen
    into a final bill (and so part of ``settled``), nothing is billed twice."""
    now = settled_figures(((line.meter, line.quantity, line.amount) for line in recomputed), ())  # trial lines too
    result = []
    for meter in sorted(set(now) | set(settled)):
        line = now.get(meter, Settled(ZERO, ZERO))
        before = settled.get(meter, Settled(ZERO, ZERO))
        quantity = line.quantity - before.quantity
        amount = line.amount - before.amount
        if quantity != 0 or amount != 0:
            result.append(LateAdjustment(original_period, meter, quantity, amount,
                                         late_reason(original_period, quantity, repriced_by)))
    return result


def late_reason(original_period: str, quantity_change: Decimal, repriced_by: Sequence[str]) -> str:
    if quantity_change != 0:
        return (f"{original_period} 结账后收到的用量或归属变更 "
                f"(usage or resource ownership for {original_period} changed after the period closed)")
    if repriced_by:
        cards = ", ".join(repriced_by)
        return f"{original_period} 结账后费率卡调整 {cards} (re-rated by rate card {cards} after the period closed)"
    return f"{original_period} 结账后重新计价 (re-rated after the period closed)"
