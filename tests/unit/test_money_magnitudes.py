"""The largest figures the contracts allow stay exact: rating, tiers, bill lines, rounding and their text."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

from schemas.money import MAX_QUANTITY, MAX_UNIT_PRICE, quantity_text, round_fen, yuan_text
from services.billing.domain.bills import UsageSlice, price_usage
from services.metering.domain.rating import MeteredUsage, card_prices, graduated_charge, rate_usage, Tier

T0 = datetime(2026, 11, 1, tzinfo=UTC)
QUANTITY = Decimal("999999999999999999999.999999999")  # the largest quantity the events contract takes
PRICE = Decimal("999999.999999")  # the largest unit price
assert QUANTITY < MAX_QUANTITY and PRICE < MAX_UNIT_PRICE


def wide(expression):
    with localcontext() as context:
        context.prec = 200
        return expression()


def test_rounding_and_text_of_amounts_beyond_ten_to_the_26_are_exact():
    amount = Decimal("123456789012345678901234567890.125")
    assert round_fen(amount) == Decimal("123456789012345678901234567890.13")
    assert yuan_text(amount.copy_negate()) == "-123456789012345678901234567890.13"
    assert quantity_text(QUANTITY) == "999999999999999999999.999999999"


def test_the_largest_quantity_at_the_largest_price_is_rated_exactly():
    card = card_prices(1, "v1", T0, {"compute.vcpu": str(PRICE)})
    usage = [MeteredUsage("vm-1", "compute.vcpu", QUANTITY, T0, T0 + timedelta(minutes=30))] * 3
    ((_, delta),) = rate_usage(usage, {}, [card]).items()
    assert delta.quantity == wide(lambda: 3 * QUANTITY)
    assert delta.amount == wide(lambda: 3 * QUANTITY * PRICE)


def test_tiers_and_bill_lines_at_the_largest_figures_are_exact():
    tiers = (Tier(Decimal("1e20"), PRICE), Tier(None, Decimal("0.000001")))
    charge = graduated_charge(tiers, Decimal(0), QUANTITY)
    assert charge == wide(lambda: Decimal("1e20") * PRICE + (QUANTITY - Decimal("1e20")) * Decimal("0.000001"))
    card = card_prices(1, "v1", T0, {"compute.vcpu": str(PRICE)})
    exact = wide(lambda: 2 * QUANTITY * PRICE)
    slices = [UsageSlice(T0 + timedelta(hours=h), "compute.vcpu", 1, "sys", QUANTITY, wide(lambda: QUANTITY * PRICE),
                         Decimal(0)) for h in range(2)]
    (line,) = price_usage(slices, {1: card})
    assert (line.exact_amount, line.amount) == (exact, wide(lambda: round_fen(exact)))
    assert sum(s.amount for s in line.systems) == line.amount
