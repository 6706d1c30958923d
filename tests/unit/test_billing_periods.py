"""Billing periods, closing times, where late changes are billed, budget alerts, and the bill's rendering."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
from hypothesis import given
from hypothesis import strategies as st

from schemas.billing import BillOut
from services.billing.domain.bills import (
    Bill,
    LateAdjustment,
    ManualAdjustment,
    UsageSlice,
    bill_number,
    parse_bill_number,
    price_usage,
)
from services.billing.domain.budgets import RunRate, budget_alerts, projected_year_spend
from services.billing.domain.periods import (
    closed_run_before,
    closes_at,
    due_periods,
    next_open_period,
    open_periods_after_closed,
    previous_month,
)
from services.billing.domain.render import bill_csv, content_hash_of, draft_bytes, issue
from services.common.periods import LOCAL_TZ, Month, month_of
from services.metering.domain.rating import card_prices


def test_a_period_closes_its_grace_days_after_the_local_month_end():
    assert closes_at("2050-03", 3) == datetime(2050, 4, 4, tzinfo=LOCAL_TZ)
    just_before = datetime(2050, 4, 3, 15, 59, 59, tzinfo=UTC)  # 23:59:59 local on the 3rd
    assert due_periods(["2050-03", "2050-02", "2050-04"], {"2050-02"}, just_before, 3) == []
    assert due_periods(["2050-03", "2050-02", "2050-04"], {"2050-02"}, just_before + timedelta(seconds=1), 3) == [
        "2050-03"]
    assert due_periods(["2050-12", "2050-11"], set(), datetime(2051, 1, 1, tzinfo=LOCAL_TZ), 0) == ["2050-11",
                                                                                                   "2050-12"]


def test_the_month_of_an_instant_is_local():
    assert month_of(datetime(2050, 3, 31, 15, 30, tzinfo=UTC)) == "2050-03"  # 23:30 local
    assert month_of(datetime(2050, 3, 31, 16, 30, tzinfo=UTC)) == "2050-04"  # 00:30 local on 1 April


def test_late_changes_go_to_the_next_open_period():
    closed = {"2050-01", "2050-02", "2050-04"}
    assert next_open_period("2050-01", closed) == "2050-03"
    assert next_open_period("2050-04", closed) == "2050-05"
    assert closed_run_before("2050-03", closed) == ["2050-01", "2050-02"]
    assert closed_run_before("2050-05", closed) == ["2050-04"]
    assert closed_run_before("2050-04", closed) == []
    assert previous_month("2051-01") == "2050-12"


@given(st.sets(st.integers(0, 120), max_size=80))
def test_the_open_periods_after_closed_ones_are_where_each_closed_periods_late_changes_go(offsets):
    closed = {str(Month(2049, 11).shifted(k)) for k in offsets}
    assert open_periods_after_closed(closed) == {next_open_period(p, closed) for p in closed}


@given(st.integers(1, 40), st.integers(1, 12), st.sets(st.integers(0, 60), max_size=30))
def test_every_closed_period_is_carried_by_exactly_the_open_period_after_it(target, run, others):
    """The open period ``target`` with a run of ``run`` closed months just before it (always: the case the rule
    is about), other closed months anywhere else except ``target`` itself."""
    def month(i):
        return f"{2050 + i // 12}-{i % 12 + 1:02d}"

    run = min(run, target)
    before = [month(i) for i in range(target - run, target)]
    closed = ({month(i) for i in others} - {month(target), month(target - run - 1)}) | set(before)
    assert closed_run_before(month(target), closed) == before
    for period in before:
        assert next_open_period(period, closed) == month(target)


def test_bill_numbers():
    assert bill_number("2026-11", "czj") == "GM-2026-11-czj"
    assert parse_bill_number("GM-2026-11-dep-a.b") == ("2026-11", "dep-a.b")
    assert parse_bill_number("XX-2026-11-czj") is None


def test_budget_thresholds_and_the_run_rate_projection():
    budget = Decimal("1000.00")
    assert [a.kind for a in budget_alerts("d", 2050, budget, Decimal("499.99"), None, 24)] == []
    assert [a.kind for a in budget_alerts("d", 2050, budget, Decimal("500"), None, 24)] == ["spend_50"]
    assert [a.kind for a in budget_alerts("d", 2050, budget, Decimal("1000"), None, 24)] == [
        "spend_50", "spend_80", "spend_100"]
    # March: 62 of its 744 hours cost 10.00, so 120.00 a month; 200 spent before, 5 adjusted, 10 months to go
    rate = RunRate("2050-03", Decimal("10.00"), Decimal("5.00"), Decimal("200"), Decimal(62), Decimal(744))
    assert projected_year_spend(rate) == Decimal("1405.00")  # 200 + 5 + 120 × 10
    (alert,) = budget_alerts("d", 2050, budget, Decimal("215"), rate, 24)
    assert (alert.kind, alert.period, alert.projected) == ("projected_overrun", "2050-03", Decimal("1405.00"))
    assert budget_alerts("d", 2050, budget, Decimal("215"), rate, 100) == []  # too few hours to project


CARD = card_prices(7, "2050-v7", datetime(2050, 1, 1, tzinfo=LOCAL_TZ),
                   {"compute.vcpu": "0.12", "network.egress": {"tiers": [{"up_to": "10", "unit_price": "0.80"},
                                                                         {"up_to": None, "unit_price": "0.50"}]}})


def sample_bill(status="final") -> Bill:
    hour = datetime(2050, 3, 2, tzinfo=UTC)
    lines = price_usage([
        UsageSlice(None, "compute.vcpu", 7, "政务服务平台", Decimal("10.5"), Decimal("1.26"), Decimal(0)),
        UsageSlice(hour, "network.egress", 7, "门户网站", Decimal(12), Decimal(0), Decimal(0)),
    ], {7: CARD})
    closed = datetime(2050, 4, 4, tzinfo=LOCAL_TZ)
    return Bill(bill_number("2050-03", "czj"), "2050-03", "czj", "市财政局", status, tuple(lines),
                (LateAdjustment("2050-02", "compute.vcpu", Decimal(1), Decimal("0.12"), "late"),),
                (ManualAdjustment(3, Decimal("-1.00"), "outage credit", "INC-1", "admin", closed),),
                as_of=closed, closed_at=closed if status == "final" else None)


def test_a_final_bill_has_a_reproducible_content_hash_covering_its_csv():
    bill = sample_bill()
    paper = issue(bill)
    assert issue(bill) == paper
    document = orjson.loads(paper.document)
    assert document["content_hash"] == paper.content_hash == content_hash_of(document)
    assert document["total"] == "9.38"  # 1.26 + (8.00 + 1.00) + 0.12 − 1.00
    assert [line["amount"] for line in document["lines"]] == ["1.26", "9.00"]
    assert document["lines"][1]["prices"][0]["tiers"] == [
        {"up_to": "10", "unit_price": "0.80", "quantity": "10"}, {"up_to": None, "unit_price": "0.50", "quantity": "2"}]
    BillOut.model_validate(document)
    tampered = paper.csv.replace(b"9.00", b"8.00")
    assert content_hash_of({**document, "csv_sha256": __import__("hashlib").sha256(tampered).hexdigest()}) != \
        paper.content_hash


def test_the_csv_has_a_bom_chinese_headers_and_a_row_per_line_system_and_adjustment():
    text = bill_csv(sample_bill()).decode("utf-8")
    assert text.startswith("\ufeff账单编号,部门编号,部门名称,账期,状态,类型,计量项,计量项名称,信息系统")
    rows = text.splitlines()
    assert [row.split(",")[5] for row in rows[1:]] == ["用量", "信息系统分项", "用量", "信息系统分项", "结账后调整",
                                                       "减免", "合计"]
    assert "云主机vCPU" in text and "市财政局" in text and "0–10: 0.80; 10–∞: 0.50" in text
    assert rows[-1].endswith(",合计,,,,,,,9.38,,")


def test_a_draft_has_no_hashes_and_the_same_shape():
    document = orjson.loads(draft_bytes(sample_bill("draft")))
    assert document["status"] == "draft" and document["content_hash"] is None and document["closed_at"] is None
    BillOut.model_validate(document)
