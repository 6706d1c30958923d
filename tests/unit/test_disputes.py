"""The pure rules of bill disputes: the disputed line, who answers from which state, the credit's limit and where it
lands."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, strategies as st

from services.billing.domain.disputes import (
    DisputeRefused,
    check_answer,
    check_credit,
    credit_limit,
    credit_period,
    credit_reason,
    credit_reference,
    line_of,
)

DOCUMENT = orjson.dumps({"lines": [{"meter": "compute.vcpu", "quantity": "12.5", "amount": "12.50"},
                                   {"meter": "storage.block", "quantity": "100", "amount": "0.04"}]})
fen = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2)


def test_the_disputed_line_is_read_from_the_final_bill_as_issued():
    line = line_of(DOCUMENT, "GM-2090-01-a", "compute.vcpu")
    assert (line.meter, line.quantity, line.amount) == ("compute.vcpu", "12.5", Decimal("12.50"))


def test_a_meter_the_bill_has_no_line_for_is_refused_naming_meter_and_the_lines_it_has():
    with pytest.raises(DisputeRefused) as refused:
        line_of(DOCUMENT, "GM-2090-01-a", "network.egress")
    assert refused.value.status == 422
    assert str(refused.value) == ("meter: bill GM-2090-01-a has no line for network.egress "
                                  "(its lines: compute.vcpu, storage.block)")


@pytest.mark.parametrize("state", ["rejected", "upheld"])
def test_an_answered_dispute_cannot_be_answered_again(state):
    with pytest.raises(DisputeRefused) as refused:
        check_answer(7, state, "finance", datetime(2090, 2, 3, tzinfo=UTC))
    assert refused.value.status == 409 and str(refused.value).startswith(f"status: dispute 7 is already {state}")


def test_an_open_dispute_may_be_answered():
    check_answer(7, "open", None, None)


def test_a_credit_may_be_the_whole_line_but_not_a_fen_more():
    assert check_credit(Decimal("12.50"), Decimal("12.50"), []) == Decimal("12.50")
    with pytest.raises(DisputeRefused) as refused:
        check_credit(Decimal("12.51"), Decimal("12.50"), [])
    assert refused.value.status == 422 and str(refused.value) == "amount: at most 12.50 (the line's 12.50)"


def test_earlier_upheld_credits_of_the_line_lower_the_limit():
    with pytest.raises(DisputeRefused) as refused:
        check_credit(Decimal("5.00"), Decimal("12.50"), [Decimal("8.00")])
    assert str(refused.value) == "amount: at most 4.50 (the line's 12.50 less 8.00 already credited by earlier disputes)"


@given(line=fen, credits=st.lists(fen, max_size=5))
def test_the_credits_of_a_line_never_add_up_to_more_than_the_line(line, credits):
    granted: list[Decimal] = []
    for credit in credits:
        try:
            granted.append(check_credit(credit, line, granted))
        except DisputeRefused:
            assert credit > credit_limit(line, granted)
    assert sum(granted, Decimal(0)) <= line
    assert credit_limit(line, granted) == line - sum(granted, Decimal(0))


def test_the_credit_lands_on_the_first_open_period_after_the_disputed_one():
    assert credit_period("2090-01", {"2090-01"}) == "2090-02"
    assert credit_period("2090-01", {"2090-01", "2090-02", "2090-03"}) == "2090-04"
    assert credit_period("2090-12", {"2090-12"}) == "2091-01"


def test_the_credit_names_the_dispute_the_bill_and_the_line():
    assert credit_reason(12, "GM-2090-01-a", "compute.vcpu") == "争议 #12 成立 (dispute upheld): GM-2090-01-a compute.vcpu"
    assert credit_reference(12) == "dispute:12"
