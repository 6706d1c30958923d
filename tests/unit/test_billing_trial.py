"""The trial phase (试运行): its window and go-live rules, and trial usage priced on lines of its own."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.billing.domain.applications import IllegalTransition
from services.billing.domain.bills import ZERO, BillLine, Settled, late_adjustments, price_usage
from services.billing.domain.render import bill_csv, bill_document
from services.billing.domain.bills import Bill
from services.billing.domain.trials import LIVE, TRIAL, go_live, phase, trial_window
from tests.unit.test_billing_pricing import CARDS, SYSTEMS, make_slice

T = datetime(2069, 3, 10, 2, tzinfo=UTC)
METERS = ["compute.vcpu", "network.egress", "storage.block", "gpu.hours"]

slice_specs = st.lists(
    st.tuples(st.integers(0, 740), st.sampled_from(METERS), st.sampled_from(SYSTEMS),
              st.decimals(0, 500, places=3), st.booleans()),
    max_size=25)


def slices_with(specs, rate: Decimal):
    return [replace(make_slice(h, m, s, q), trial_rate=rate if trial else None) for h, m, s, q, trial in specs]


def by_meter(lines: list[BillLine]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for line in lines:
        totals[line.meter] = totals.get(line.meter, ZERO) + line.exact_amount
    return totals


@settings(max_examples=150, deadline=None)
@given(slice_specs)
def test_at_rate_one_trial_and_normal_lines_add_up_to_the_undiscounted_bill(specs):
    undiscounted = price_usage(slices_with(specs, Decimal(1)), CARDS)
    plain = price_usage([replace(s, trial_rate=None) for s in slices_with(specs, Decimal(1))], CARDS)
    assert by_meter(undiscounted) == by_meter(plain)
    rounded = {}
    for line in undiscounted:
        rounded[line.meter] = rounded.get(line.meter, ZERO) + line.amount
    for line in plain:  # each line rounded on its own: within a fen of the undivided line
        assert abs(rounded[line.meter] - line.amount) <= Decimal("0.01")


@settings(max_examples=150, deadline=None)
@given(slice_specs, st.decimals(0, 1, places=6))
def test_normal_lines_do_not_depend_on_the_trial_rate_and_rate_zero_bills_trial_lines_at_zero(specs, rate):
    at_rate = price_usage(slices_with(specs, rate), CARDS)
    at_zero = price_usage(slices_with(specs, Decimal(0)), CARDS)
    assert [line for line in at_rate if line.trial_rate is None] == [line for line in at_zero
                                                                     if line.trial_rate is None]
    for line in at_zero:
        if line.trial_rate is not None:
            assert line.amount == Decimal("0.00") and all(s.amount == 0 for s in line.systems)
    trial_quantity = sum((q for _, _, _, q, trial in specs if trial), ZERO)
    assert sum((line.quantity for line in at_zero if line.trial_rate is not None), ZERO) == trial_quantity


def test_a_trial_line_is_its_rate_times_the_normal_price_rounded_half_up_per_line():
    slices = [replace(make_slice(0, "compute.vcpu", SYSTEMS[0], Decimal(5)), trial_rate=Decimal("0.5")),
              make_slice(1, "compute.vcpu", SYSTEMS[0], Decimal(5))]
    normal, trial = price_usage(slices, CARDS)
    assert (normal.trial_rate, normal.amount) == (None, Decimal("0.60"))
    assert (trial.trial_rate, trial.quantity, trial.amount) == (Decimal("0.5"), Decimal(5), Decimal("0.30"))


def test_trial_usage_counts_toward_the_tier_position_of_the_billed_usage():
    # network.egress on card 1: 0.80 up to 100, then 0.65: 100 trial units fill the first tier
    slices = [replace(make_slice(0, "network.egress", SYSTEMS[0], Decimal(100)), trial_rate=ZERO),
              make_slice(1, "network.egress", SYSTEMS[0], Decimal(10))]
    normal, trial = price_usage(slices, CARDS)
    assert normal.amount == Decimal("6.50") and trial.amount == Decimal("0.00")


def test_late_adjustments_compare_a_meters_trial_and_normal_lines_together():
    lines = price_usage([replace(make_slice(0, "compute.vcpu", SYSTEMS[0], Decimal(5)), trial_rate=ZERO),
                         make_slice(1, "compute.vcpu", SYSTEMS[0], Decimal(5))], CARDS)
    assert late_adjustments("2069-03", lines, {"compute.vcpu": Settled(Decimal(10), Decimal("0.60"))}) == []


def test_bill_documents_mark_trial_lines_and_leave_normal_lines_as_they_were():
    lines = price_usage([replace(make_slice(0, "compute.vcpu", SYSTEMS[0], Decimal(5)), trial_rate=ZERO),
                         make_slice(1, "compute.vcpu", SYSTEMS[0], Decimal(5))], CARDS)
    bill = Bill("GM-2069-03-d", "2069-03", "d", "D", "draft", tuple(lines))
    document = bill_document(bill)
    assert "trial_rate" not in document["lines"][0] and document["lines"][1]["trial_rate"] == "0"
    csv_text = bill_csv(bill).decode("utf-8-sig")
    assert "试运行用量" in csv_text and "按正常价格的 0 倍计费" in csv_text


def test_a_trial_runs_from_activation_for_its_days_then_is_live():
    trial = trial_window(T, 7, T)
    assert trial.ends_at == T + timedelta(days=7)
    assert phase(trial, T + timedelta(days=6)) == TRIAL
    assert phase(trial, T + timedelta(days=7)) == LIVE
    assert phase(None, T) == LIVE


@pytest.mark.parametrize("days, now, closed, field", [
    (0, T, None, "trial_days"),
    (91, T, None, "trial_days"),
    (2, T + timedelta(days=2), None, "trial_days"),
    (7, T, {"2069-03"}, "effective_at"),
    (30, T, {"2069-01", "2069-04"}, "effective_at"),
])
def test_a_trial_that_could_not_be_billed_truthfully_is_refused_naming_the_field(days, now, closed, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        trial_window(T, days, now, closed or ())


def test_a_trial_may_start_while_other_months_are_closed():
    assert trial_window(T, 7, T, {"2069-02", "2069-04"}).ends_at == T + timedelta(days=7)


def test_going_live_ends_the_trial_now_and_only_once():
    trial = trial_window(T, 7, T)
    ended = go_live("fulfilled", trial, T + timedelta(days=2))
    assert ended.ends_at == T + timedelta(days=2) and phase(ended, T + timedelta(days=2)) == LIVE
    with pytest.raises(IllegalTransition, match="^state: the application is live"):
        go_live("fulfilled", ended, T + timedelta(days=3))
    with pytest.raises(IllegalTransition, match="^state: the application is fulfilled without a trial"):
        go_live("fulfilled", None, T)
    with pytest.raises(IllegalTransition, match="^state: the application is approved"):
        go_live("approved", None, T)
