"""Spreadsheet cells (services.common.spreadsheet): text that would start a formula is inert, numbers stay numbers."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook

from services.common.spreadsheet import append_inert_row, inert_cell


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","点击")', "+1+1", "-1+2", "@SUM(A1)", "\tx", "\r=1",
                                  "＝1+1", "-", "-A1", "-1e5"])
def test_text_that_a_spreadsheet_would_evaluate_gets_a_leading_quote(text):
    assert inert_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["-12.50", "0", "12", "3.3", "政务服务平台", "GM-2026-01-x", "", None,
                                   Decimal("-1.00"), -5, 2.5])
def test_numbers_and_ordinary_text_are_written_as_they_are(value):
    assert inert_cell(value) == value


def test_xlsx_text_is_stored_as_strings_and_numbers_as_numbers():
    book = Workbook()
    sheet = book.active
    append_inert_row(sheet, ['=HYPERLINK("http://x","点击")', Decimal("-3.50"), "bad\x01char", "-7.5"])
    buffer = io.BytesIO()
    book.save(buffer)
    row = next(load_workbook(buffer).active.iter_rows())
    assert [(c.value, c.data_type) for c in row] == [
        ("'=HYPERLINK(\"http://x\",\"点击\")", "s"), (-3.5, "n"), ("bad\ufffdchar", "s"), ("-7.5", "s")]
