"""The budget basis counts what the bills charged: lines, late adjustments and manual adjustments (dispute
credits), by service family or by information system, to the fen."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.billing.domain.billed import BilledMonth, billed_month, by_group

FAMILY_OF = {"compute.vcpu": "compute", "storage.block": "storage"}
DOCUMENT = {
    "lines": [
        {"meter": "compute.vcpu", "amount": "5.00", "systems": [{"system": "政务服务平台", "amount": "3.00"},
                                                                {"system": "不动产登记", "amount": "2.00"}]},
        {"meter": "storage.block", "amount": "0.37", "systems": [{"system": "不动产登记", "amount": "0.37"}]},
    ],
    "adjustments": [
        {"kind": "late", "original_period": "2093-01", "meter": "compute.vcpu", "amount": "1.00"},
        {"kind": "manual", "id": 7, "amount": "-0.50", "reason": "争议退款 dispute 12"},
        {"kind": "manual", "id": 8, "amount": "0.01", "reason": "补收"},
    ],
}


def test_a_month_is_its_bills_lines_late_and_manual_adjustments_to_the_fen():
    month = billed_month(DOCUMENT)
    assert (month.lines, month.late_adjustments, month.manual_adjustments, month.total) == (
        Decimal("5.37"), Decimal("1.00"), Decimal("-0.49"), Decimal("5.88"))


def test_lines_break_down_by_family_or_by_information_system_leaving_adjustments_apart():
    month = billed_month(DOCUMENT)
    assert by_group(month, "family", FAMILY_OF) == {"compute": Decimal("5.00"), "storage": Decimal("0.37")}
    assert by_group(month, "system", FAMILY_OF) == {"政务服务平台": Decimal("3.00"), "不动产登记": Decimal("2.37")}
    assert by_group(billed_month({"lines": [{"meter": "gpu.x", "amount": "1.10"}], "adjustments": []}),
                    "family", FAMILY_OF) == {"other": Decimal("1.10")}


fen = st.decimals(min_value=-10_000, max_value=10_000, places=2)


@given(st.lists(st.tuples(st.sampled_from(list(FAMILY_OF)), st.lists(fen, min_size=1, max_size=3)), max_size=6),
       st.lists(fen, max_size=3), st.lists(fen, max_size=3))
def test_either_breakdown_plus_the_adjustments_adds_up_to_the_bill_total(lines, late, manual):
    document = {
        "lines": [{"meter": meter, "amount": str(sum(parts)),
                   "systems": [{"system": f"s{i}", "amount": str(a)} for i, a in enumerate(parts)]}
                  for meter, parts in lines],
        "adjustments": [{"kind": "late", "amount": str(a)} for a in late]
                       + [{"kind": "manual", "amount": str(a)} for a in manual],
    }
    month = billed_month(document)
    for view in ("family", "system"):
        assert sum(by_group(month, view, FAMILY_OF).values(), Decimal(0)) + month.late_adjustments \
            + month.manual_adjustments == month.total
    assert month.total == sum((sum(p) for _, p in lines), Decimal(0)) + sum(late, Decimal(0)) + sum(manual, Decimal(0))


def test_an_empty_month_charges_nothing():
    assert BilledMonth().total == 0
