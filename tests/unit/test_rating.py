from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from schemas.money import round_fen, yuan_text
from services.metering.domain.attribution import LifecycleChange, ownership_intervals, owner_at
from services.metering.domain.rating import (
    MeteredUsage,
    Tier,
    card_at,
    card_prices,
    graduated_charge,
    rate_usage,
)
from tests.unit.reference import naive_fen, naive_graduated
from tests.unit.strategies import LARGEST_QUANTITY

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def card(card_id, at, **prices):
    return card_prices(card_id, f"v{card_id}", at, {k.replace("_", "."): v for k, v in prices.items()})


def test_round_fen_is_half_up_including_negatives():
    assert round_fen(Decimal("0.005")) == Decimal("0.01")
    assert round_fen(Decimal("0.0049999")) == Decimal("0.00")
    assert round_fen(Decimal("-0.005")) == Decimal("-0.01")
    assert round_fen(Decimal("2.675")) == Decimal("2.68")
    assert yuan_text(Decimal("3")) == "3.00"


@given(st.one_of(st.decimals(min_value=-10**12, max_value=10**12, places=6, allow_nan=False, allow_infinity=False),
                 st.decimals(min_value=-10**30, max_value=10**30, places=12, allow_nan=False, allow_infinity=False),
                 st.builds(lambda fen, extra: Decimal(fen) / 100 + Decimal(extra) / 1000, st.integers(-10**6, 10**6),
                           st.sampled_from([-5, 5]))))  # exact halves of a fen, both signs
def test_round_fen_agrees_with_a_naive_half_up_to_the_largest_amounts(amount):
    assert round_fen(amount) == naive_fen(amount)


def test_card_at_picks_the_newest_card_in_force():
    cards = [card(1, T0, compute_vcpu="0.1"), card(2, T0 + timedelta(days=10), compute_vcpu="0.2")]
    assert card_at(cards, T0 - timedelta(seconds=1)) is None
    assert card_at(cards, T0).id == 1
    assert card_at(cards, T0 + timedelta(days=10) - timedelta(microseconds=1)).id == 1
    assert card_at(cards, T0 + timedelta(days=10)).id == 2


def test_usage_is_priced_by_the_card_in_force_at_each_slice_start():
    cards = [card(1, T0, compute_vcpu="0.10"), card(2, T0 + timedelta(hours=2), compute_vcpu="0.20")]
    usage = MeteredUsage("vm-1", "compute.vcpu", Decimal("4"), T0, T0 + timedelta(hours=4))
    deltas = rate_usage([usage], {}, cards)
    assert sum(d.amount for d in deltas.values()) == Decimal("0.10") * 2 + Decimal("0.20") * 2
    assert {key[5] for key in deltas} == {1, 2}


def test_unpriced_meter_is_rated_zero_and_counted_as_unpriced():
    deltas = rate_usage([MeteredUsage("vm-1", "compute.gpu", Decimal("2"), T0, T0 + timedelta(hours=1))], {},
                        [card(1, T0, compute_vcpu="0.1")])
    (delta,) = deltas.values()
    assert (delta.amount, delta.unpriced_quantity) == (Decimal(0), Decimal(2))


def change(action, at, dept=None, order=0):
    return LifecycleChange(action, at, dept, "sys", "vm", {}, (order,))


def test_ownership_follows_lifecycle_in_effective_order_whatever_the_arrival_order():
    changes = [
        change("terminated", T0 + timedelta(days=20), order=3),
        change("changed", T0 + timedelta(days=10), "b", order=2),
        change("activated", T0, "a", order=1),
    ]
    intervals = ownership_intervals("vm-1", changes)
    assert owner_at(intervals, T0 - timedelta(seconds=1)) is None
    assert owner_at(intervals, T0).department_id == "a"
    assert owner_at(intervals, T0 + timedelta(days=10)).department_id == "b"
    assert owner_at(intervals, T0 + timedelta(days=20)) is None


def test_usage_without_owner_is_kept_unattributed():
    usage = MeteredUsage("vm-9", "compute.vcpu", Decimal("1"), T0, T0 + timedelta(hours=1))
    (key,) = rate_usage([usage], {}, []).keys()
    assert key[3] is None


TIERS = (Tier(Decimal("1000"), Decimal("0.80")), Tier(None, Decimal("0.50")))


def test_graduated_charge_crosses_tiers():
    assert graduated_charge(TIERS, Decimal(0), Decimal(1500)) == Decimal(1000) * Decimal("0.80") + 500 * Decimal(
        "0.50")
    assert graduated_charge(TIERS, Decimal(1200), Decimal(10)) == Decimal("5.00")


NAIVE_TIERS = [(t.up_to, t.unit_price) for t in TIERS]


def exact_decimal(value: Fraction) -> Decimal:
    """A sum of decimals with at most 9 places, back as an exact Decimal."""
    return Decimal(f"{value.numerator * 10**9 // value.denominator}E-9")  # from text: exact at any length


@given(st.lists(st.one_of(st.decimals(min_value=0, max_value=5000, places=3),
                          st.decimals(min_value=0, max_value=LARGEST_QUANTITY, places=9)), min_size=1, max_size=30))
def test_graduated_charge_does_not_depend_on_how_usage_is_split(pieces):
    """Piece by piece from the running position, each against the naive difference of cumulative charges, and
    the pieces' charges add up to the charge of their total (exact sums: the test's own Decimal context would
    round 30-digit quantities)."""
    position, charged = Fraction(0), Fraction(0)
    for piece in pieces:
        charge = graduated_charge(TIERS, exact_decimal(position), piece)
        assert charge == naive_graduated(NAIVE_TIERS, position, piece)
        charged += Fraction(charge)
        position += Fraction(piece)
    assert Fraction(graduated_charge(TIERS, Decimal(0), exact_decimal(position))) == charged
