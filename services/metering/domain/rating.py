"""Prices from effective-dated rate cards, and usage rated into hourly charge rollups."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Iterable, Iterator, NamedTuple

from schemas.money import exact
from services.common.periods import HOUR
from services.metering.domain.attribution import Ownership, owner_at
from services.metering.domain.splitting import split_into_hours


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: Decimal | None  # cumulative quantity where this tier ends; None: no end
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class RateCardPrices:
    id: int
    version: str
    effective_from: datetime
    flat: dict[str, Decimal]  # meter → unit price in yuan
    tiered: dict[str, tuple[Tier, ...]]  # meter → graduated tiers over a department's month-to-date quantity

    def is_priced(self, meter: str) -> bool:
        return meter in self.flat or meter in self.tiered


def card_at(cards: list[RateCardPrices], instant: datetime) -> RateCardPrices | None:
    """The newest card whose effective_from ≤ instant; ``cards`` sorted by effective_from."""
    index = _card_index(cards, instant)
    return cards[index] if index >= 0 else None


def _card_index(cards: list[RateCardPrices], instant: datetime) -> int:
    return bisect_right(cards, instant, key=lambda c: c.effective_from) - 1


class MeteredUsage(NamedTuple):
    """A stored usage event, reduced to what rating needs (a tuple: the worker makes one per event)."""

    resource_id: str
    meter: str
    quantity: Decimal
    start: datetime
    end: datetime


# (hour, resource_id, meter, department_id, system, rate_card_id); department None = unattributed
RollupKey = tuple[datetime, str, str, str | None, str | None, int]


@dataclass(slots=True)
class RollupDelta:
    quantity: Decimal
    amount: Decimal  # exact yuan, not rounded: rounding happens once, on the figure a person reads
    unpriced_quantity: Decimal


@exact
def rate_usage(
    usages: Iterable[MeteredUsage | tuple],
    owners: dict[str, list[Ownership]],
    cards: list[RateCardPrices],
    from_hour: datetime | None = None,
) -> dict[RollupKey, RollupDelta]:
    """Split, attribute and rate usage into hourly rollup deltas.

    A slice (the part of one event inside one hour) belongs to the owner at the slice's start and is priced by
    the card in force at that start. Tiered meters carry quantity here and are priced on the bill, where the
    department's month-to-date position is known. ``from_hour`` keeps only slices in hours ≥ it (for rebuilds)."""
    return _rate_usage(usages, owners, cards, from_hour)


def _rate_usage(usages, owners, cards, from_hour) -> dict[RollupKey, RollupDelta]:
    deltas: dict[RollupKey, RollupDelta] = {}
    card_in_force = _CardLookup(cards)
    no_owners: list[Ownership] = []
    for resource_id, meter, quantity, start, end in usages:
        intervals = owners.get(resource_id, no_owners)
        start = start.astimezone(UTC)  # one tzinfo for every comparison below: the cheap kind
        hour = start.replace(minute=0, second=0, microsecond=0)
        if end <= hour + HOUR:  # the common case: the event lies inside one hour
            pieces: Iterable = ((hour, start, quantity),)
        else:
            pieces = ((p.hour, p.start, p.quantity) for p in split_into_hours(start, end, quantity))
        for piece_hour, piece_start, piece_quantity in pieces:
            if from_hour is not None and piece_hour < from_hour:
                continue
            owner = owner_at(intervals, piece_start)
            card = card_in_force(piece_start)
            key = (
                piece_hour,
                resource_id,
                meter,
                owner.department_id if owner else None,
                owner.system if owner else None,
                card.id if card else 0,
            )
            delta = deltas.get(key)
            if delta is None:
                delta = deltas[key] = RollupDelta(Decimal(0), Decimal(0), Decimal(0))
            delta.quantity += piece_quantity
            price = card.flat.get(meter) if card else None
            if price is not None:
                delta.amount += piece_quantity * price
            elif card is None or not card.is_priced(meter):
                delta.unpriced_quantity += piece_quantity
    return deltas


class _CardLookup:
    """``card_at`` with a memo of the last answer's validity range: consecutive slices mostly share a card."""

    def __init__(self, cards: list[RateCardPrices]) -> None:
        self.cards = cards
        self.low: datetime | None = None
        self.high: datetime | None = None
        self.card: RateCardPrices | None = None

    def __call__(self, instant: datetime) -> RateCardPrices | None:
        if self.low is not None and self.low <= instant and (self.high is None or instant < self.high):
            return self.card
        index = _card_index(self.cards, instant)
        if index < 0:
            return None
        self.card = self.cards[index]
        self.low = self.card.effective_from
        self.high = self.cards[index + 1].effective_from if index + 1 < len(self.cards) else None
        return self.card


def tier_walk(tiers: tuple[Tier, ...], position: Decimal, quantity: Decimal) -> Iterator[tuple[int, Tier, Decimal]]:
    """(1-based tier number, tier, units) for ``quantity`` more units when ``position`` units were already used
    this month: only tiers that take some units. Bills and the FOCUS export's charge rows both walk it."""
    remaining = quantity
    cursor = position
    for number, tier in enumerate(tiers, start=1):
        if remaining <= 0:
            break
        if tier.up_to is not None and cursor >= tier.up_to:
            continue
        room = remaining if tier.up_to is None else min(remaining, tier.up_to - cursor)
        yield number, tier, room
        remaining -= room
        cursor += room


@exact
def graduated_charge(tiers: tuple[Tier, ...], position: Decimal, quantity: Decimal) -> Decimal:
    """Exact charge for ``quantity`` more units when ``position`` units were already used this month."""
    charge = Decimal(0)
    for _, tier, units in tier_walk(tiers, position, quantity):
        charge += units * tier.unit_price
    return charge


def card_prices(card_id: int, version: str, effective_from: datetime, prices: dict) -> RateCardPrices:
    """A stored rate card (prices as JSON: a decimal string or ``{"tiers": [...]}``) in rating form."""
    flat: dict[str, Decimal] = {}
    tiered: dict[str, tuple[Tier, ...]] = {}
    for meter, price in prices.items():
        if isinstance(price, dict):
            tiered[meter] = tuple(
                Tier(None if t["up_to"] is None else Decimal(str(t["up_to"])), Decimal(str(t["unit_price"])))
                for t in price["tiers"]
            )
        else:
            flat[meter] = Decimal(str(price))
    return RateCardPrices(card_id, version, effective_from, flat, tiered)
