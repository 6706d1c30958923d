"""The budget basis counts what was billed: a manual adjustment (a dispute credit is one) and a late adjustment
are part of the trailing twelve months' spend, and the spend breaks down by information system as well as by
service family, in JSON, CSV and XLSX. Years 2092–2093 belong to these tests (this file: 2093-01/02)."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from tests.integration.support import ADMIN, FINANCE, auth, lifecycle_event, usage_event
from tests.integration.test_billing import close, department, local, new_id, publish, rate_card

pytestmark = pytest.mark.usefixtures("worker")
PARAMS = {"year": 2094, "through": "2093-02"}


@pytest.fixture(scope="module")
async def billed(apps, worker):
    """January 2093: ¥3.00 on 政务服务平台 and ¥2.00 on 不动产登记, a ¥0.50 credit, closed (¥4.50); then ¥1.00
    of January usage arrives late (an adjustment on February's bill) and February uses ¥4.00 on 不动产登记."""
    dep = await department(apps)
    await rate_card(apps, local(2093, 1, 1), compute_vcpu="1.00")
    gov, estate = new_id("vm"), new_id("vm")
    await publish(apps, [lifecycle_event(gov, "activated", dep, local(2093, 1, 1), system="政务服务平台"),
                         lifecycle_event(estate, "activated", dep, local(2093, 1, 1), system="不动产登记"),
                         usage_event(gov, "compute.vcpu", "3", local(2093, 1, 10)),
                         usage_event(estate, "compute.vcpu", "2", local(2093, 1, 11)),
                         usage_event(estate, "compute.vcpu", "4", local(2093, 2, 3))], worker)
    credit = await apps["billing"].post("/v1/adjustments", headers=ADMIN, json={
        "department_id": dep, "amount": "-0.50", "reason": "争议退款 (dispute credit)", "month": "2093-01"})
    assert credit.status_code == 201, credit.text
    closed = await close(apps, "2093-01", local(2093, 2, 5))
    assert [b["total"] for b in closed["bills"] if b["department_id"] == dep] == ["4.50"]
    await publish(apps, [usage_event(gov, "compute.vcpu", "1", local(2093, 1, 20))], worker)
    return dep


async def basis(apps, **params):
    response = await apps["query"].get("/v1/reports/budget-basis", params={**PARAMS, **params}, headers=FINANCE)
    assert response.status_code == 200, response.text
    return response


async def test_manual_and_late_adjustments_count_in_the_trailing_twelve_months_spend(apps, billed):
    (mine,) = [d for d in (await basis(apps)).json()["departments"] if d["department_id"] == billed]
    jan, feb = mine["months"][-2:]
    assert (jan["amount"], jan["manual_adjustments"], jan["late_adjustments"]) == ("4.50", "-0.50", "0.00")
    assert (feb["amount"], feb["manual_adjustments"], feb["late_adjustments"]) == ("5.00", "0.00", "1.00")
    assert mine["actual_12_months"] == "9.50" and mine["by_family"]["compute"] == "9.00"
    assert (mine["late_adjustments"], mine["manual_adjustments"]) == ("1.00", "-0.50")
    assert mine["by_system"] is None  # the family view unless asked


async def test_the_basis_breaks_down_by_information_system_adding_up_to_the_bills(apps, billed):
    (mine,) = [d for d in (await basis(apps, by="system")).json()["departments"] if d["department_id"] == billed]
    assert mine["by_system"] == {"不动产登记": "6.00", "政务服务平台": "3.00"}
    jan, feb = mine["months"][-2:]
    assert jan["by_system"] == {"不动产登记": "2.00", "政务服务平台": "3.00"} and feb["by_system"] == {"不动产登记": "4.00"}
    assert mine["actual_12_months"] == "9.50"  # 9.00 on the systems + 1.00 late − 0.50 credit
    book = load_workbook(io.BytesIO((await basis(apps, by="system", format="xlsx")).content))
    assert book.sheetnames == ["预算依据", "按信息系统", "月度明细", "计算方法"]
    systems = {(r[0], r[2]): Decimal(str(r[3])) for r in book["按信息系统"].iter_rows(min_row=2, values_only=True)}
    assert systems[(billed, "不动产登记")] == Decimal("6.00") and systems[(billed, "政务服务平台")] == Decimal("3.00")
    detail = [r for r in book["月度明细"].iter_rows(min_row=2, values_only=True) if r[0] == billed]
    assert sum(Decimal(str(r[-1])) for r in detail) == Decimal("9.50")
    late = {r[2]: Decimal(str(r[4])) for r in detail if r[3] == "迟到调整(元)"}
    assert (late["2093-01"], late["2093-02"]) == (Decimal(0), Decimal("1.00"))  # on the bill that carries it
    summary = book["预算依据"]
    header = [c.value for c in summary[1]]
    assert header[2:4] == ["迟到调整(元)", "手工调整及争议退款(元)"] and header[-1] == "建议预算基数(元)"
    csv_text = (await basis(apps, by="system", format="csv", lang="en")).text
    assert "Late adjustments (CNY)" in csv_text.splitlines()[0]


async def test_the_basis_views_refuse_a_bad_view_and_every_department_token(apps, billed):
    bad = await apps["query"].get("/v1/reports/budget-basis", params={**PARAMS, "by": "meter"}, headers=FINANCE)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("by:"), bad.text
    for by in ("family", "system"):
        own = await apps["query"].get("/v1/reports/budget-basis", params={**PARAMS, "by": by},
                                      headers=auth("department", billed))
        assert own.status_code == 403, own.text
