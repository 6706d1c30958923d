"""The bill documents of the console's 账单 page: GET /v1/bills/{bill_id}/document.xlsx and document.pdf show the
same bill as its CSV, every amount equal to the fen (read back with openpyxl and pypdf), a final bill's from its
stored bytes with its stored hash, never changing; formula-like text stays inert; a department fetches only its own.

Era: 2066–2067 (rate cards are global and effective-dated; other tests live in other years)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from services.billing.domain.render import CSV_HEADER
from tests.integration.support import ADMIN, FINANCE, PROVIDER, auth, lifecycle_event, usage_event
from tests.integration.test_billing import close, department, local, new_id, publish, rate_card, \
    two_departments_with_usage

pytestmark = pytest.mark.usefixtures("worker")

FORMULA = '=HYPERLINK("http://x","点击")'
# Amounts have exactly two decimals; the test's quantities are whole and its unit prices have three decimals, so in
# the PDF's text these are the amounts and nothing else.
AMOUNT = re.compile(r"(?<![\d.])-?\d+\.\d{2}(?![\d.])")
FEN = Decimal("0.01")


def csv_rows(body: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def xlsx_table(body: bytes) -> tuple[list[tuple], list]:
    """(header cells, table rows as cells) of the bill workbook; the table starts at the CSV's header."""
    sheet = load_workbook(io.BytesIO(body)).active
    rows = list(sheet.iter_rows())
    start = next(i for i, row in enumerate(rows) if [c.value for c in row] == CSV_HEADER[5:])
    return rows[:start], rows[start + 1:]


def pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


def figure(value) -> Decimal:
    return Decimal(str(value))


async def documents(apps, bill_id: str, headers=FINANCE) -> tuple[bytes, bytes, bytes]:
    billing = apps["billing"]
    answers = await asyncio.gather(billing.get(f"/v1/bills/{bill_id}.csv", headers=headers),
                                   billing.get(f"/v1/bills/{bill_id}/document.xlsx", headers=headers),
                                   billing.get(f"/v1/bills/{bill_id}/document.pdf", headers=headers))
    for answer in answers:
        assert answer.status_code == 200, answer.text
    assert answers[1].headers["content-type"].startswith("application/vnd.openxmlformats")
    assert answers[2].headers["content-type"] == "application/pdf"
    return answers[0].content, answers[1].content, answers[2].content


def assert_same_figures(csv_body: bytes, xlsx_body: bytes, pdf_body: bytes) -> list[dict]:
    """Every quantity and amount of the CSV is in the XLSX (as a number, in the same row) and every amount in the
    PDF's table, in the CSV's order, to the fen."""
    rows = csv_rows(csv_body)
    _, table = xlsx_table(xlsx_body)
    assert len(table) == len(rows)
    column = {name: CSV_HEADER[5:].index(name) for name in ("类型", "数量", "金额(元)", "原账期")}
    for row, cells in zip(rows, table):
        assert cells[column["类型"]].value == row["类型"]
        assert (cells[column["原账期"]].value or "") == row["原账期"]
        amount = cells[column["金额(元)"]]
        assert amount.data_type == "n" and figure(amount.value).quantize(FEN) == Decimal(row["金额(元)"])
        if row["数量"]:
            assert figure(cells[column["数量"]].value) == Decimal(row["数量"])
    text = pdf_text(pdf_body)
    table_text = text[text.index(" ".join(CSV_HEADER[5:])):]
    assert AMOUNT.findall(table_text) == [row["金额(元)"] for row in rows]
    return rows


async def test_final_and_draft_documents_match_the_csv_to_the_fen_and_a_final_one_carries_its_stored_hash(
        apps, worker):
    dep = await department(apps, "市大数据发展局")
    await rate_card(apps, local(2066, 1, 1), compute_vcpu="0.125", storage_block="0.015")
    vm, disk = new_id("vm"), new_id("disk")
    await publish(apps, [
        lifecycle_event(vm, "activated", dep, local(2066, 1, 1), system=FORMULA),
        lifecycle_event(disk, "activated", dep, local(2066, 1, 1), system="政务服务平台", kind="volume"),
        usage_event(vm, "compute.vcpu", "37", local(2066, 1, 5)),
        usage_event(disk, "storage.block", "1013", local(2066, 1, 6)),
        usage_event(vm, "compute.vcpu", "5", local(2066, 1, 7)),
    ], worker)
    credit = await apps["billing"].post("/v1/adjustments", headers=ADMIN, json={
        "department_id": dep, "amount": "-1.00", "reason": "@SUM(1+1) 服务中断补偿", "month": "2066-01"})
    assert credit.status_code == 201, credit.text
    january = f"GM-2066-01-{dep}"

    # a draft: marked as one, figures as its CSV's
    csv_body, xlsx_body, pdf_body = await documents(apps, january, auth("department", dep))
    assert_same_figures(csv_body, xlsx_body, pdf_body)
    head, _ = xlsx_table(xlsx_body)
    assert ("状态 Status", "草稿 draft") in [(r[0].value, r[1].value) for r in head if r[0].value]
    assert "草稿" in pdf_text(pdf_body) and "内容哈希" not in pdf_text(pdf_body)

    await close(apps, "2066-01", local(2066, 2, 5))
    issued = (await apps["billing"].get(f"/v1/bills/{january}", headers=FINANCE)).json()
    # 42 × 0.125 = 5.25; 1013 × 0.015 = 15.195 → 15.20 (half-up); less the credit of 1.00
    assert issued["status"] == "final" and issued["total"] == "19.45"
    csv_body, xlsx_body, pdf_body = await documents(apps, january)
    rows = assert_same_figures(csv_body, xlsx_body, pdf_body)
    assert rows[-1]["类型"] == "合计" and rows[-1]["金额(元)"] == issued["total"]
    head, table = xlsx_table(xlsx_body)
    fields = {r[0].value: r[1].value for r in head if r[0].value}
    assert fields["内容哈希 Content hash (sha256)"] == issued["content_hash"]
    assert (fields["状态 Status"], fields["币种 Currency"]) == ("正式 final", "CNY (元)")
    assert issued["content_hash"] in pdf_text(pdf_body) and "正式 final" in pdf_text(pdf_body)

    # formula-like text is an inert string cell; no cell of the workbook is a formula
    workbook = load_workbook(io.BytesIO(xlsx_body)).active
    assert [c.coordinate for row in workbook.iter_rows() for c in row if c.data_type == "f"] == []
    systems = [row[CSV_HEADER[5:].index("信息系统")] for row in table if row[0].value == "信息系统分项"]
    assert ("'" + FORMULA, "s") in [(c.value, c.data_type) for c in systems]
    notes = [row[CSV_HEADER[5:].index("说明")].value for row in table if row[0].value == "减免"]
    assert notes and notes[0].startswith("'@SUM(1+1)")

    # late usage for January: the final documents do not change; February's draft carries it, naming January
    await publish(apps, [usage_event(vm, "compute.vcpu", "8", local(2066, 1, 20)),
                         usage_event(vm, "compute.vcpu", "3", local(2066, 2, 3))], worker)
    await asyncio.sleep(1.1)  # a later second: nothing in the documents may follow the clock
    assert await documents(apps, january) == (csv_body, xlsx_body, pdf_body)
    csv_body, xlsx_body, pdf_body = await documents(apps, f"GM-2066-02-{dep}", auth("department", dep))
    rows = assert_same_figures(csv_body, xlsx_body, pdf_body)
    (late,) = [row for row in rows if row["类型"] == "结账后调整"]
    assert (late["原账期"], late["金额(元)"]) == ("2066-01", "1.00")
    assert "2066-01" in pdf_text(pdf_body)


async def test_a_department_fetches_only_its_own_bill_documents(apps, worker):
    mine, theirs = await two_departments_with_usage(apps, worker, 2067)
    billing, token = apps["billing"], auth("department", mine)

    async def statuses(bill_id: str, headers) -> set[int]:
        answers = await asyncio.gather(*(billing.get(f"/v1/bills/{bill_id}/document.{kind}", headers=headers)
                                         for kind in ("xlsx", "pdf")))
        return {a.status_code for a in answers}

    for state in ("draft", "final"):
        assert await statuses(f"GM-2067-01-{mine}", token) == {200}
        assert await statuses(f"GM-2067-01-{theirs}", token) == {403}
        assert await statuses(f"GM-2067-01-{theirs}", FINANCE) == {200}
        assert await statuses(f"GM-2067-01-{mine}", PROVIDER) == {403}
        assert await statuses(f"GM-2067-01-{mine}", {}) == {401}
        if state == "draft":
            await close(apps, "2067-01", local(2067, 2, 1))
    assert await statuses("GM-2067-01-nobody-here", FINANCE) == {404}
    assert await statuses("not-a-bill", FINANCE) == {404}
    assert await statuses(f"GM-2067-01-{theirs}", token) == {403}
