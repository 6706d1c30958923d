"""Pricing a month of usage into bill lines: tiers in time order, flat sums, rounding, late adjustments."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from services.billing.domain.bills import (
    Settled,
    UsageSlice,
    allocate_fen,
    late_adjustments,
    price_usage,
    settled_figures,
    tier_quantities,
)
from services.metering.domain.rating import Tier, card_prices
from tests.unit.reference import naive_fen, naive_graduated, naive_tier_split
from tests.unit.strategies import LARGEST_QUANTITY, distinct_texts

MONTH = datetime(2050, 3, 1, tzinfo=UTC) - timedelta(hours=8)  # 2050-03-01 00:00 local
TIERS_A = {"tiers": [{"up_to": "100", "unit_price": "0.80"}, {"up_to": "250", "unit_price": "0.65"},
                     {"up_to": None, "unit_price": "0.50"}]}
TIERS_B = {"tiers": [{"up_to": "200", "unit_price": "0.70"}, {"up_to": None, "unit_price": "0.30"}]}
CARDS = {
    1: card_prices(1, "v1", MONTH, {"compute.vcpu": "0.12", "network.egress": TIERS_A}),
    2: card_prices(2, "v2", MONTH + timedelta(days=12, hours=5), {"compute.vcpu": "0.15", "network.egress": TIERS_B,
                                                                  "storage.block": "0.0012"}),
}
SYSTEMS = ["政务服务平台", "办公自动化系统", "门户网站"]


def card_for(hour: datetime) -> int:
    return 2 if hour >= CARDS[2].effective_from else 1


def make_slice(hour_index: int, meter: str, system: str, quantity: Decimal) -> UsageSlice:
    hour = MONTH + timedelta(hours=hour_index)
    card = CARDS[card_for(hour)]
    price = card.flat.get(meter)
    priced = price is not None or meter in card.tiered
    with localcontext(prec=60):  # exact, as the rollups hold it
        amount = quantity * price if price is not None else Decimal(0)
    return UsageSlice(hour, meter, card.id, system, quantity, amount, Decimal(0) if priced else quantity)


def tiers_of(card_id: int, meter: str) -> list[tuple]:
    return [(t.up_to, t.unit_price) for t in CARDS[card_id].tiered[meter]]


def naive_lines(slices: list[UsageSlice]) -> dict[str, tuple[Fraction, dict[str, Fraction]]]:
    """Per meter: the exact amount and the exact amount per system, walking the slices in the documented order
    (hour, then the card's effective date, then system) with the naive tier arithmetic."""
    order = sorted(slices, key=lambda s: (s.hour, CARDS[s.rate_card_id].effective_from, s.system))
    position: dict[str, Fraction] = defaultdict(Fraction)
    lines: dict[str, tuple[Fraction, dict[str, Fraction]]] = {}
    for s in order:
        total, systems = lines.setdefault(s.meter, (Fraction(0), defaultdict(Fraction)))
        if s.meter in CARDS[s.rate_card_id].tiered:
            amount = naive_graduated(tiers_of(s.rate_card_id, s.meter), position[s.meter], s.quantity)
        else:
            amount = Fraction(s.amount)
        position[s.meter] += Fraction(s.quantity)
        lines[s.meter] = (total + amount, systems)
        systems[s.system] += amount
    return lines


quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("80"), places=3)
slices_strategy = st.lists(
    st.builds(make_slice, st.integers(0, 24 * 31 - 1), st.sampled_from(["compute.vcpu", "network.egress",
                                                                         "storage.block"]),
              st.sampled_from(SYSTEMS), quantities),
    min_size=1, max_size=40,
)


def split(s: UsageSlice, cuts: list[int]) -> list[UsageSlice]:
    """The same usage as several slices with the same key (how it arrives in chunks), cut at whole
    thousandths of a unit: metered quantities are exact decimals."""
    units = int(s.quantity * 1000)
    points = sorted({c % units for c in cuts} - {0})
    bounds = [0, *points, units]
    pieces = [Decimal(b - a) / 1000 for a, b in zip(bounds, bounds[1:])]
    price = s.amount / s.quantity
    return [UsageSlice(s.hour, s.meter, s.rate_card_id, s.system, q, q * price,
                       q if s.unpriced_quantity else Decimal(0)) for q in pieces]


@settings(max_examples=150, deadline=None)
@given(slices_strategy, st.data())
def test_splitting_a_months_usage_into_chunks_in_any_order_never_changes_the_bill(slices, data):
    chunked = []
    for s in slices:
        chunked += split(s, data.draw(st.lists(st.integers(1, 10**6), max_size=4)))
    shuffled = data.draw(st.permutations(chunked))
    before, after = price_usage(slices, CARDS), price_usage(shuffled, CARDS)
    assert before == after


@st.composite
def hostile_slices(draw):
    """Usage slices whose systems are hostile text and whose quantities reach the contract's limits."""
    systems = draw(distinct_texts(3))
    quantity = st.one_of(quantities, st.decimals(min_value=0, max_value=LARGEST_QUANTITY, places=9))
    return draw(st.lists(st.builds(make_slice, st.integers(0, 24 * 31 - 1), st.sampled_from(
        ["compute.vcpu", "network.egress", "storage.block"]), st.sampled_from(systems), quantity), min_size=1,
        max_size=40))


@settings(max_examples=150, deadline=None)
@given(st.one_of(slices_strategy, hostile_slices()))
def test_a_line_is_its_exact_amount_rounded_half_up_and_its_systems_add_up_to_it(slices):
    expected = naive_lines(slices)
    lines = price_usage(slices, CARDS)
    assert [line.meter for line in lines] == sorted(expected)
    for line in lines:
        exact, systems = expected[line.meter]
        assert Fraction(line.exact_amount) == exact
        assert line.amount == naive_fen(exact)
        assert [s.system for s in line.systems] == sorted(systems)  # every name kept as it came
        assert sum(s.amount for s in line.systems) == line.amount
        assert all(abs(Fraction(s.amount) - systems[s.system]) < Fraction(1, 100) for s in line.systems)
        assert sum(Fraction(s.quantity) for s in line.systems) == Fraction(line.quantity)
        assert sum(Fraction(p.quantity) for p in line.prices) + Fraction(line.unpriced_quantity) == line.quantity


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 24 * 31 - 1), quantities), min_size=1, max_size=30))
def test_under_one_card_a_tiered_meter_costs_the_graduated_charge_of_its_month_total(usage):
    one_card = {1: CARDS[1]}
    slices = [UsageSlice(MONTH + timedelta(hours=h), "network.egress", 1, "sys", q, Decimal(0), Decimal(0))
              for h, q in usage]
    (line,) = price_usage(slices, one_card)
    total = sum(Fraction(q) for _, q in usage)
    assert Fraction(line.exact_amount) == naive_graduated(tiers_of(1, "network.egress"), 0, total)
    (price,) = line.prices
    assert [Fraction(t.quantity) for t in price.tiers] == naive_tier_split(tiers_of(1, "network.egress"), 0, total)


def test_a_month_of_tiered_usage_worked_by_hand():
    slices = [UsageSlice(MONTH + timedelta(hours=h), "network.egress", 1, "a", Decimal(q), Decimal(0), Decimal(0))
              for h, q in ((5, "60"), (1, "70.5"), (9, "200"))]
    (line,) = price_usage(slices, {1: CARDS[1]})
    # 330.5 units: 100 × 0.80 + 150 × 0.65 + 80.5 × 0.50 = 80 + 97.50 + 40.25
    assert (line.exact_amount, line.amount) == (Decimal("217.75"), Decimal("217.75"))
    assert [t.quantity for t in line.prices[0].tiers] == [100, 150, Decimal("80.5")]


def test_a_mid_month_card_prices_later_slices_and_keeps_the_tier_position():
    before = [UsageSlice(MONTH + timedelta(days=1), "network.egress", 1, "a", Decimal(150), Decimal(0), Decimal(0))]
    after = [UsageSlice(CARDS[2].effective_from, "network.egress", 2, "a", Decimal(100), Decimal(0), Decimal(0))]
    (line,) = price_usage(before + after, CARDS)
    # card 1: 100 × 0.80 + 50 × 0.65 = 112.50; card 2 from position 150: 50 × 0.70 + 50 × 0.30 = 50.00
    assert line.amount == Decimal("162.50")
    assert [(p.rate_card, [t.quantity for t in p.tiers]) for p in line.prices] == [
        ("v1", [100, 50, 0]), ("v2", [50, 50])]


def test_slices_in_the_same_hour_are_taken_in_order_of_their_cards_effective_dates():
    hour = CARDS[2].effective_from.replace(minute=0)
    late = UsageSlice(hour, "network.egress", 2, "a", Decimal(100), Decimal(0), Decimal(0))
    early = UsageSlice(hour, "network.egress", 1, "a", Decimal(150), Decimal(0), Decimal(0))
    assert price_usage([late, early], CARDS)[0].amount == Decimal("162.50")


@given(st.lists(st.tuples(st.decimals(0, 100, places=2), st.integers(0, 1000)), min_size=1, max_size=8),
       st.decimals(0, 1000, places=2))
def test_tier_quantities_cover_the_quantity_and_price_to_the_graduated_charge(bounds, position):
    ups = sorted({Decimal(b) + 1 for b, _ in bounds})
    tiers = tuple(Tier(up, Decimal(p) / 100) for up, (_, p) in zip(ups, bounds)) + (Tier(None, Decimal("0.01")),)
    quantity = Decimal("123.45")
    parts = tier_quantities(tiers, position, quantity)
    naive = [(t.up_to, t.unit_price) for t in tiers]
    assert [Fraction(p) for p in parts] == naive_tier_split(naive, position, quantity)
    assert sum(q * t.unit_price for q, t in zip(parts, tiers)) == naive_graduated(naive, position, quantity)


@given(st.lists(st.decimals(0, 1000, places=6), min_size=1, max_size=12))
def test_allocation_adds_up_and_stays_within_a_fen_of_each_part(parts):
    total = naive_fen(sum(Fraction(p) for p in parts))
    shares = allocate_fen(total, parts)
    assert sum(shares) == total
    assert all(abs(share - part) < Decimal("0.01") for share, part in zip(shares, parts))


@settings(max_examples=150, deadline=None)
@given(slices_strategy, slices_strategy)
def test_late_adjustments_bring_a_closed_period_to_what_it_comes_to_now_and_are_not_billed_twice(first, late):
    final = price_usage(first, CARDS)
    now = price_usage(first + late, CARDS)
    settled = settled_figures([(l.meter, l.quantity, l.amount) for l in final], [])
    adjustments = late_adjustments("2050-03", now, settled)
    for line in now:
        billed = settled.get(line.meter, Settled(Decimal(0), Decimal(0)))
        extra = [a for a in adjustments if a.meter == line.meter]
        assert billed.amount + sum(a.amount for a in extra) == line.amount
        assert billed.quantity + sum(a.quantity for a in extra) == line.quantity
    frozen = [(a.meter, a.quantity, a.amount) for a in adjustments]
    settled_after = settled_figures([(l.meter, l.quantity, l.amount) for l in final], frozen)
    assert late_adjustments("2050-03", now, settled_after) == []


def test_a_late_adjustment_names_the_period_and_the_reason():
    (adjustment,) = late_adjustments("2050-03", [], {"compute.vcpu": Settled(Decimal(2), Decimal("0.24"))})
    assert (adjustment.quantity, adjustment.amount) == (Decimal(-2), Decimal("-0.24"))
    assert "2050-03" in adjustment.reason and "after the period closed" in adjustment.reason
    (repriced,) = late_adjustments("2050-03", price_usage([make_slice(1, "compute.vcpu", "a", Decimal(2))], CARDS),
                                   {"compute.vcpu": Settled(Decimal(2), Decimal("0.20"))}, ["v9"])
    assert repriced.amount == Decimal("0.04") and "v9" in repriced.reason
