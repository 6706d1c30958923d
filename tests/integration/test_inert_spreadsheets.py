"""No cell of a CSV or XLSX that govmeter writes is a formula (OWASP CSV injection): a department name and an
information system of the shape ``=HYPERLINK(...)`` reach the final bill's CSV, the FOCUS export, the utilisation
report and the budget-basis workbook as inert text, while numbers, negative ones included, stay numbers.

Era: 2044–2045 (rate cards are global and effective-dated; other tests live in other years)."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from openpyxl import load_workbook

import services.billing.closing as closing
from services.billing.domain.render import issue
from services.replay.run import replay
from services.common.db import get_engine
from tests.integration.support import ADMIN, FINANCE, lifecycle_event, usage_event
from tests.integration.test_billing import close, local, new_id, publish, rate_card

pytestmark = pytest.mark.usefixtures("worker")

FORMULA = '=HYPERLINK("http://x","点击")'
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def live_cells(rows) -> list[str]:
    """Cells a spreadsheet would evaluate: text starting with a trigger that is not a plain number."""
    live = []
    for row in rows:
        for cell in row:
            if isinstance(cell, str) and cell.startswith(TRIGGERS):
                try:
                    float(cell)
                except ValueError:
                    live.append(cell)
    return live


async def evil_department(apps, worker, year: int) -> tuple[str, str]:
    """A department named like a formula, whose VM's information system is one too, with usage in January of
    ``year`` at ¥1.00 a vCPU-hour and a credit of ¥1.00."""
    dep = f"dep-{uuid.uuid4().hex[:8]}"
    response = await apps["billing"].post("/v1/departments", json={"id": dep, "name": FORMULA}, headers=ADMIN)
    assert response.status_code == 201, response.text
    await rate_card(apps, local(year, 1, 1), compute_vcpu="1.00")
    vm = new_id("vm")
    await publish(apps, [lifecycle_event(vm, "activated", dep, local(year, 1, 1), system=FORMULA),
                         usage_event(vm, "compute.vcpu", "3", local(year, 1, 5))], worker)
    response = await apps["billing"].post("/v1/adjustments", headers=ADMIN, json={
        "department_id": dep, "amount": "-1.00", "reason": "@SUM(1+1)", "month": f"{year}-01"})
    assert response.status_code == 201, response.text
    return dep, vm


async def test_formula_text_is_inert_in_every_csv_and_xlsx_and_numbers_stay_numbers(apps, worker):
    dep, _ = await evil_department(apps, worker, 2044)
    await close(apps, "2044-01", local(2044, 2, 5))

    bill_csv = await apps["billing"].get(f"/v1/bills/GM-2044-01-{dep}.csv", headers=FINANCE)
    assert bill_csv.status_code == 200
    rows = list(csv.reader(io.StringIO(bill_csv.content.decode("utf-8-sig"))))
    assert live_cells(rows) == []
    header = rows[0]
    usage = next(r for r in rows[1:] if r[header.index("信息系统")])
    assert usage[header.index("信息系统")] == "'" + FORMULA and usage[header.index("部门名称")] == "'" + FORMULA
    credit = next(r for r in rows if r[header.index("类型")] == "减免")
    assert credit[header.index("金额(元)")] == "-1.00"  # a number, not neutralised text
    assert credit[header.index("说明")].startswith("'@SUM(1+1)")

    focus = await apps["query"].get("/v1/exports/focus", params={"month": "2044-01", "department": dep},
                                    headers=FINANCE)
    assert focus.status_code == 200
    records = list(csv.DictReader(io.StringIO(focus.text)))
    assert live_cells([r.values() for r in records]) == []
    assert {r["x_System"] for r in records if r["ChargeCategory"] == "Usage"} == {"'" + FORMULA}
    assert {r["SubAccountName"] for r in records} == {"'" + FORMULA}
    assert [r["BilledCost"] for r in records if r["ChargeCategory"] == "Credit"] == ["-1.0"]

    utilization = await apps["query"].get("/v1/reports/utilization", headers=FINANCE, params={
        "period": "month", "start": "2044-01-01", "department": dep, "format": "csv"})
    assert utilization.status_code == 200
    rows = list(csv.reader(io.StringIO(utilization.content.decode("utf-8-sig"))))
    assert live_cells(rows) == [] and "'" + FORMULA in rows[1]

    xlsx = await apps["query"].get("/v1/reports/budget-basis", headers=FINANCE,
                                   params={"year": 2045, "through": "2044-12", "format": "xlsx"})
    assert xlsx.status_code == 200, xlsx.text
    book = load_workbook(io.BytesIO(xlsx.content))
    cells = [cell for sheet in book for row in sheet.iter_rows() for cell in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    assert live_cells([[c.value for c in cells]]) == []
    (name,) = [row[1] for row in book.worksheets[0].iter_rows(min_row=2) if row[0].value == dep]
    assert (name.value, name.data_type) == ("'" + FORMULA, "s")


async def test_a_bill_closed_before_cells_were_inert_keeps_its_bytes_and_replays_identical(
        apps, worker, settings, monkeypatch):
    dep, _ = await evil_department(apps, worker, 2045)
    with monkeypatch.context() as patch:  # close as govmeter did before: the CSV's text cells as they came
        patch.setattr(closing, "issue", lambda bill: issue(bill, inert_csv=False))
        await close(apps, "2045-01", local(2045, 2, 5))
    stored = await apps["billing"].get(f"/v1/bills/GM-2045-01-{dep}.csv", headers=FINANCE)
    assert FORMULA.replace('"', '""') in stored.content.decode("utf-8-sig")  # served exactly as issued
    verified = await apps["billing"].get("/v1/ledger/verify", headers=ADMIN)
    assert verified.json()["ok"], verified.text
    report = await replay(get_engine(), settings.database_url)
    assert report.ok, report.differences
