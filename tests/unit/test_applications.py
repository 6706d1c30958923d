"""Resource applications (pure): the state machine, the two-working-day clocks on the Chinese calendar, and the
monthly estimate priced by the bills' own code."""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.billing.domain.applications import (
    ACTIONS,
    CHINESE_CALENDAR,
    STATES,
    WEEKDAYS,
    IllegalTransition,
    Item,
    due_at,
    estimate_lines,
    hours_in,
    is_late,
    next_state,
    working_day,
)
from services.billing.domain.bills import UsageSlice, price_usage
from services.common.periods import LOCAL_TZ
from services.metering.domain.rating import card_prices


def local(y, m, d, h=0, mi=0):
    return dt.datetime(y, m, d, h, mi, tzinfo=LOCAL_TZ)


# --- the clock ---------------------------------------------------------------------------------------------------


def test_friday_before_national_day_counts_the_adjusted_working_sunday():
    # 2025-09-26 is a Friday; Saturday 27 is a rest day, Sunday 28 an adjusted working day, Monday 29 the second.
    assert due_at(local(2025, 9, 26, 16, 30)).at == local(2025, 9, 30)


def test_the_national_day_holiday_does_not_run_the_clock():
    # Submitted on the eve of the holiday (1–8 October 2025): the clock runs on the 9th and the 10th.
    due = due_at(local(2025, 9, 30, 9))
    assert due.at == local(2025, 10, 11)
    assert due.calendar == CHINESE_CALENDAR


def test_an_adjusted_working_saturday_counts_as_a_working_day():
    # 2025-10-11 is a Saturday worked in lieu of the holiday: Friday 10 → Saturday 11, Monday 13.
    assert due_at(local(2025, 10, 10, 11)).at == local(2025, 10, 14)


def test_an_ordinary_weekend_is_skipped():
    # Thursday 2026-11-19: Friday 20 and Monday 23 are the two working days.
    assert due_at(local(2026, 11, 19, 10)).at == local(2026, 11, 24)


def test_the_starting_day_does_not_count_whatever_the_hour():
    assert due_at(local(2026, 11, 17, 0, 1)).at == due_at(local(2026, 11, 17, 23, 59)).at == local(2026, 11, 20)


def test_the_clock_reads_the_local_day_of_an_utc_instant():
    # 2026-11-17 17:00 UTC is already Wednesday 18 in Shanghai: Thursday 19 and Friday 20 count.
    assert due_at(dt.datetime(2026, 11, 17, 17, tzinfo=dt.UTC)).at == local(2026, 11, 21)


def test_years_the_calendar_package_does_not_know_fall_back_to_weekdays_and_say_so():
    assert working_day(dt.date(2088, 3, 6)) == (False, WEEKDAYS)  # a Saturday
    due = due_at(local(2088, 3, 5, 10))  # Friday → Monday 8, Tuesday 9
    assert due.at == local(2088, 3, 10)
    assert due.calendar == WEEKDAYS


@given(st.datetimes(min_value=dt.datetime(2005, 1, 1), max_value=dt.datetime(2095, 12, 1), timezones=st.just(LOCAL_TZ)))
def test_a_clock_runs_out_at_local_midnight_after_exactly_two_working_days(start):
    due = due_at(start)
    assert due.at.astimezone(LOCAL_TZ).time() == dt.time(0)
    days = []
    day = start.date() + dt.timedelta(days=1)
    while day < due.at.date():
        days.append(day)
        day += dt.timedelta(days=1)
    working = [d for d in days if working_day(d)[0]]
    assert len(working) == 2
    assert working[-1] == days[-1]  # it runs out at the end of the second working day, not later
    assert due.at - start <= dt.timedelta(days=20)  # the longest holiday is far shorter


def test_late_means_done_after_the_clock_ran_out_or_not_done_by_now():
    due = local(2026, 11, 20)
    assert not is_late(due, local(2026, 11, 19, 23), local(2026, 12, 1))
    assert is_late(due, local(2026, 11, 20, 0, 1), local(2026, 11, 20, 1))
    assert is_late(due, None, local(2026, 11, 20, 0, 1))
    assert not is_late(due, None, local(2026, 11, 19))
    assert not is_late(None, None, local(2026, 11, 19))
    assert not is_late(due, None, local(2026, 12, 1), running=False)  # withdrawn or rejected: the clock stopped


# --- the states --------------------------------------------------------------------------------------------------


def test_the_happy_path_runs_submitted_accepted_approved_fulfilled():
    state = "submitted"
    for action in ("accept", "approve", "fulfil"):
        state = next_state(state, action)
    assert state == "fulfilled"


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_an_action_from_a_state_it_does_not_leave_is_illegal_and_names_the_state(state, action):
    if state in ACTIONS[action].sources:
        assert next_state(state, action) == ACTIONS[action].target
    else:
        with pytest.raises(IllegalTransition, match=f"state: the application is {state}"):
            next_state(state, action)


def test_final_states_leave_by_no_action():
    for state in ("rejected", "fulfilled", "withdrawn"):
        # go-live ends a fulfilled application's trial; it stays fulfilled
        assert not [a for a in ACTIONS.values() if state in a.sources and a.target != state]


# --- the estimate -------------------------------------------------------------------------------------------------

CARD = card_prices(7, "2026-11", local(2026, 11, 1), {
    "compute.vcpu": "0.12", "compute.memory": "0.05",
    "network.egress": {"tiers": [{"up_to": "100", "unit_price": "0.80"}, {"up_to": None, "unit_price": "0.50"}]},
})


def test_a_rate_meter_is_held_every_hour_of_the_month():
    lines = estimate_lines([Item("compute.vcpu", Decimal(4)), Item("compute.memory", Decimal(16))], CARD, "2026-11",
                           "办公系统")
    by_meter = {line.meter: line for line in lines}
    assert hours_in("2026-11") == 720
    assert by_meter["compute.vcpu"].amount == Decimal("345.60")  # 4 × 720 × 0.12
    assert by_meter["compute.memory"].amount == Decimal("576.00")  # 16 × 720 × 0.05


def test_a_volume_meter_is_priced_on_its_monthly_volume_through_the_tiers():
    (line,) = estimate_lines([Item("network.egress", Decimal(150))], CARD, "2026-11", "门户")
    assert line.amount == Decimal("105.00")  # 100 × 0.80 + 50 × 0.50


def test_a_meter_the_card_does_not_price_is_estimated_as_unpriced():
    (line,) = estimate_lines([Item("security.waf", Decimal(1))], CARD, "2026-11", "门户")
    assert line.amount == 0 and line.unpriced_quantity == 744 - 24


@given(st.decimals(min_value=0, max_value=10 ** 6, places=3), st.sampled_from(["2026-02", "2026-11", "2027-01"]))
def test_the_estimate_equals_the_bill_of_the_same_month_of_hourly_usage(quantity, month):
    # The worker rates hour by hour; the bill sums the hours. An estimate of holding ``quantity`` vCPU for the
    # month is that bill's line, to the fen.
    (line,) = estimate_lines([Item("compute.vcpu", quantity)], CARD, month, "s")
    hours = hours_in(month)
    slices = [UsageSlice(None, "compute.vcpu", 7, "s", quantity, quantity * Decimal("0.12"), Decimal(0))] * hours
    assert line.amount == price_usage(slices, {7: CARD})[0].amount


def test_the_e_government_centre_has_a_role_of_its_own_in_tokens_and_the_cli():
    from services.common.auth import AUDIENCES, authenticate, issue_token
    from services.cli import main

    principal = authenticate(f"Bearer {issue_token('egov')}", AUDIENCES["billing"])
    assert (principal.role, principal.department) == ("egov", None)
    assert main(["token", "--role", "egov", "--audience", "billing"]) == 0
