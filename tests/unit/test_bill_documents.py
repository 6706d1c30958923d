"""The bill documents' layout (pure) and renderers: the CSV's rows and figures, text inert, same bytes each time."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from zipfile import ZipFile

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from services.billing.documents import bill_pdf, bill_xlsx
from services.billing.domain.bills import Bill, BillLine, LateAdjustment, ManualAdjustment, PriceApplied, SystemLine
from services.billing.domain.documents import attachment_name, bill_sheet, header_fields, spreadsheet_value
from services.billing.domain.render import bill_csv
from services.common.config import get_settings

FORMULA = '=HYPERLINK("http://x","点击")'
CLOSED = datetime(2031, 12, 1, tzinfo=UTC)


def a_bill(status: str = "final", quantity: str = "3600") -> Bill:
    line = BillLine(
        "compute.vcpu", Decimal(quantity), Decimal(0), Decimal(quantity) * Decimal("0.125"),
        Decimal(quantity) * Decimal("0.125"),
        (PriceApplied(1, "rc-1", datetime(2031, 1, 1, tzinfo=UTC), Decimal(quantity), unit_price=Decimal("0.125")),),
        (SystemLine(FORMULA, Decimal(quantity), Decimal(quantity) * Decimal("0.125")),),
    )
    return Bill("GM-2031-11-czj", "2031-11", "czj", "市财政局", status, (line,),
                (LateAdjustment("2031-10", "compute.vcpu", Decimal(2), Decimal("0.25"), "2031-10 结账后重新计价"),),
                (ManualAdjustment(1, Decimal("-1.00"), "@SUM(1+1)", None, "admin", CLOSED),),
                as_of=CLOSED, closed_at=CLOSED if status == "final" else None)


def test_a_bill_sheet_holds_the_csvs_rows_and_header_as_written():
    body = bill_csv(a_bill())
    records = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    sheet = bill_sheet(body, issued_at=CLOSED, content_hash="ab" * 32)
    assert [list(row) for row in sheet.rows] == [record[5:] for record in records[1:]]
    assert (sheet.bill_id, sheet.department_name, sheet.period, sheet.status, sheet.total) == (
        "GM-2031-11-czj", "市财政局", "2031-11", "final", "449.25")
    fields = dict(header_fields(sheet))
    assert fields["内容哈希 Content hash (sha256)"] == "ab" * 32 and fields["状态 Status"] == "正式 final"
    assert fields["账期 Period"].startswith("2031-11 (2031-11-01 – 2031-11-30")


def test_a_draft_is_marked_as_one_and_has_no_content_hash():
    fields = dict(header_fields(bill_sheet(bill_csv(a_bill("draft")), issued_at=CLOSED)))
    assert fields["状态 Status"] == "草稿 draft" and "草稿" in fields["注意 Note"]
    assert "内容哈希 Content hash (sha256)" not in fields and "计算时间 As of" in fields


def test_a_csv_that_is_not_a_bill_is_refused():
    with pytest.raises(ValueError):
        bill_sheet("\ufeffa,b\n1,2\n".encode())


def test_figures_are_numbers_while_a_spreadsheet_holds_them_exactly_else_the_csvs_text():
    assert spreadsheet_value("449.25") == Decimal("449.25") and spreadsheet_value("-1.00") == Decimal("-1.00")
    assert spreadsheet_value("123456789012345") == Decimal("123456789012345")
    assert spreadsheet_value("1234567890123456.5") == "1234567890123456.5"  # 17 digits: a double would change it
    assert spreadsheet_value("") == "" and spreadsheet_value("n/a") == "n/a"


def test_the_xlsx_has_the_csvs_figures_as_numbers_and_formula_text_inert():
    sheet = bill_sheet(bill_csv(a_bill(quantity="123456789012345678901")), issued_at=CLOSED)
    book = load_workbook(io.BytesIO(bill_xlsx(sheet))).active
    cells = [cell for row in book.iter_rows() for cell in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    assert ("'" + FORMULA, "s") in [(c.value, c.data_type) for c in cells]
    assert ("'@SUM(1+1); admin", "s") in [(c.value, c.data_type) for c in cells]
    assert "123456789012345678901" in [c.value for c in cells]  # 21 digits: kept as the CSV's text
    normal = load_workbook(io.BytesIO(bill_xlsx(bill_sheet(bill_csv(a_bill()))))).active
    amounts = [row[7] for row in normal.iter_rows()][-len(sheet.rows):]
    assert [(c.data_type, Decimal(str(c.value)).quantize(Decimal("0.01"))) for c in amounts] == [
        ("n", Decimal(row[7])) for row in bill_sheet(bill_csv(a_bill())).rows]


def test_documents_of_the_same_bill_are_the_same_bytes_and_the_pdf_speaks_chinese():
    sheet = bill_sheet(bill_csv(a_bill()), issued_at=CLOSED, content_hash="cd" * 32)
    font = get_settings().pdf_font
    xlsx = bill_xlsx(sheet)
    assert xlsx == bill_xlsx(sheet)
    # no entry carries the clock or a temporary file's time: every one has the bill's instant
    assert {info.date_time for info in ZipFile(io.BytesIO(xlsx)).infolist()} == {(2031, 12, 1, 0, 0, 0)}
    pdf = bill_pdf(sheet, font)
    assert pdf == bill_pdf(sheet, font)
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "市财政局" in text and "cd" * 32 in text and "云主机vCPU" in text and "449.25" in text


def test_the_file_name_is_ascii_with_the_utf8_name_beside_it():
    assert attachment_name("GM-2031-11-czj", "pdf") == (
        "attachment; filename=\"GM-2031-11-czj.pdf\"; filename*=UTF-8''GM-2031-11-czj.pdf")
    assert attachment_name('GM-2031-11-财"政', "xlsx").startswith('attachment; filename="GM-2031-11-___.xlsx"')
