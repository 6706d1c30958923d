"""Attribution and rating against a deliberately naive reference written here: linear scans for the owner and
the card in force, exact fractions for the sums. Ids, departments and systems are hostile text; quantities reach
the contract's limits (30 digits); instants straddle a local month end."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from services.metering.domain.attribution import LifecycleChange, owner_at, ownership_intervals
from services.metering.domain.rating import MeteredUsage, card_prices, rate_usage
from services.metering.domain.splitting import split_into_hours
from tests.unit.strategies import distinct_texts, hostile_text, quantities

T0 = datetime(2031, 3, 31, 10, tzinfo=UTC)  # 18:00 local on the last day of March
METERS = ["compute.vcpu", "storage.block", "network.egress"]
minutes = st.integers(-600, 3000)


def naive_owner(changes: list[LifecycleChange], instant: datetime) -> LifecycleChange | None:
    """The last change in effect at ``instant`` (ties: the later order), unless it is a termination."""
    current = None
    for change in sorted(changes, key=lambda c: (c.effective_at, c.order)):
        if change.effective_at <= instant:
            current = change
    return None if current is None or current.action == "terminated" else current


def naive_card(cards, instant):
    in_force = [c for c in cards if c.effective_from <= instant]
    return max(in_force, key=lambda c: c.effective_from) if in_force else None


@st.composite
def lifecycles(draw, departments, systems) -> list[LifecycleChange]:
    changes = []
    for order in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["activated", "changed", "terminated"]))
        department = None if action == "terminated" else draw(st.sampled_from(departments))
        at = T0 + timedelta(minutes=draw(minutes))
        changes.append(LifecycleChange(action, at, department, draw(st.sampled_from(systems)), "vm", {}, (order,)))
    return changes


@st.composite
def scenarios(draw):
    resources = draw(distinct_texts(draw(st.integers(1, 3))))
    departments = draw(distinct_texts(2))
    systems = draw(st.lists(hostile_text, min_size=2, max_size=2))
    owners = {r: draw(lifecycles(departments, systems)) for r in resources}
    cards = []
    starts = sorted(draw(st.lists(minutes, max_size=3, unique=True)))
    for card_id, at in enumerate(starts, start=1):
        prices = {}
        for meter in METERS:
            kind = draw(st.sampled_from(["flat", "unpriced", "tiered"]))
            if kind == "flat":
                prices[meter] = str(draw(st.decimals(0, 10**6, places=6)))
            elif kind == "tiered":
                prices[meter] = {"tiers": [{"up_to": "10", "unit_price": "1"}, {"up_to": None, "unit_price": "0.5"}]}
        cards.append(card_prices(card_id, f"v{card_id}", T0 + timedelta(minutes=at), prices))
    usages = []
    for _ in range(draw(st.integers(1, 6))):
        start = T0 + timedelta(minutes=draw(minutes), microseconds=draw(st.integers(0, 59_999_999)))
        end = start + timedelta(microseconds=draw(st.integers(1, 30 * 3600 * 10**6)))
        usages.append(MeteredUsage(draw(st.sampled_from(resources)), draw(st.sampled_from(METERS)),
                                   draw(quantities), start, end))
    return owners, cards, usages


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.lists(minutes, min_size=1, max_size=10))
def test_the_owner_at_any_instant_is_the_last_change_in_effect_whatever_the_names(scenario, probes):
    owners, _, _ = scenario
    for resource, changes in owners.items():
        intervals = ownership_intervals(resource, changes)
        instants = [c.effective_at for c in changes] + [T0 + timedelta(minutes=m) for m in probes]
        for instant in instants + [i - timedelta(microseconds=1) for i in instants]:
            owner, expected = owner_at(intervals, instant), naive_owner(changes, instant)
            assert (owner.department_id, owner.system) if owner else None == (
                (expected.department_id, expected.system) if expected else None)
            assert owner is None or owner.resource_id == resource


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_rating_attributes_and_prices_every_slice_as_the_naive_reference_does(scenario):
    owners, cards, usages = scenario
    expected: dict[tuple, list[Fraction]] = defaultdict(lambda: [Fraction(0)] * 3)
    for usage in usages:
        for part in split_into_hours(usage.start, usage.end, usage.quantity):  # splitting: tested on its own
            owner, card = naive_owner(owners[usage.resource_id], part.start), naive_card(cards, part.start)
            key = (part.hour, usage.resource_id, usage.meter, owner.department_id if owner else None,
                   owner.system if owner else None, card.id if card else 0)
            sums = expected[key]
            sums[0] += Fraction(part.quantity)
            if card is not None and usage.meter in card.flat:
                sums[1] += Fraction(part.quantity) * Fraction(card.flat[usage.meter])
            elif card is None or usage.meter not in card.tiered:
                sums[2] += Fraction(part.quantity)
    intervals = {r: ownership_intervals(r, changes) for r, changes in owners.items()}
    deltas = rate_usage(usages, intervals, cards)
    got = {k: [Fraction(d.quantity), Fraction(d.amount), Fraction(d.unpriced_quantity)] for k, d in deltas.items()}
    assert got == dict(expected)
