"""A month's charges per department as the bill computes them, at the grain of one resource's use of one meter
on one local day at one price (what the FOCUS export lists) and summed into invoice lines.

Rule (the bill's): flat-priced usage costs what the rollups say (exact); usage of a meter with a graduated
(tiered) price costs the graduated charge over the department's month-to-date quantity of that meter, taken in
time order, each slice under the tiers of the card in force at it; a charge row that crosses a tier boundary is
split, so every row has one unit price. An invoice line is one meter's exact month total rounded half-up to the
fen; the invoice total is the sum of its lines. Unattributed usage belongs to no invoice. Pure: the rows come from
``services.query.views.month_charges``."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from schemas.money import exact, round_fen
from services.common.periods import LOCAL_TZ
from services.metering.domain.rating import RateCardPrices, tier_walk


@dataclass(frozen=True)
class ChargeRow:
    department_id: str
    system: str
    resource_id: str
    meter: str
    day: date  # local day
    rate_card_id: int
    unit_price: Decimal | None  # None: the meter has no price on that card
    tier: int | None  # 1-based tier of a graduated price
    quantity: Decimal
    cost: Decimal  # exact yuan


def invoice_id(month: str, department_id: str) -> str:
    return f"GM-{month}-{department_id}"


@exact
def charge_rows(rows, by_id: dict[int, RateCardPrices]) -> list[ChargeRow]:
    """Rows of usage_hourly summed per (department, system, resource, meter, card, local day), in time order,
    as charges: tiered meters walk their tiers over the department's month-to-date quantity."""
    charges: list[ChargeRow] = []
    position: dict[tuple[str, str], Decimal] = defaultdict(Decimal)  # month-to-date quantity of tiered meters
    for r in rows:
        card = by_id.get(r["rate_card_id"])
        meter, quantity = r["meter"], r["quantity"]
        base = (r["department_id"], r["system"], r["resource_id"], meter, r["day"], r["rate_card_id"])
        if card is not None and meter in card.tiered:
            key = (r["department_id"], meter)
            charges.extend(_tiered_rows(base, card.tiered[meter], position[key], quantity))
            position[key] += quantity
        else:
            price = card.flat.get(meter) if card is not None else None
            charges.append(ChargeRow(*base, price, None, quantity, r["amount"]))
    return charges


@exact
def _tiered_rows(base: tuple, tiers, position: Decimal, quantity: Decimal) -> list[ChargeRow]:
    rows = [ChargeRow(*base, tier.unit_price, number, units, units * tier.unit_price)
            for number, tier, units in tier_walk(tiers, position, quantity)]
    # a zero quantity still shows as a row
    return rows or [ChargeRow(*base, tiers[0].unit_price, 1, quantity, Decimal(0))]


@dataclass
class InvoiceLine:
    meter: str
    quantity: Decimal
    exact: Decimal

    @property
    def amount(self) -> Decimal:
        return round_fen(self.exact)


@exact
def invoice_lines(charges: list[ChargeRow]) -> dict[str, dict[str, InvoiceLine]]:
    """department → meter → line."""
    lines: dict[str, dict[str, InvoiceLine]] = defaultdict(dict)
    for c in charges:
        line = lines[c.department_id].get(c.meter)
        if line is None:
            line = lines[c.department_id][c.meter] = InvoiceLine(c.meter, Decimal(0), Decimal(0))
        line.quantity += c.quantity
        line.exact += c.cost
    return dict(lines)


@exact
def invoice_total(lines: dict[str, InvoiceLine]) -> Decimal:
    return sum((line.amount for line in lines.values()), Decimal(0))


def local_day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
