"""A bill's XLSX (openpyxl) and printable PDF (fpdf2, with a CJK font) from its ``BillSheet``.

The bytes depend on the bill alone: the zip entries and the PDF's dates carry the bill's own instant (a final
bill's close), so re-fetching a final bill's document gives the same bytes."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from functools import lru_cache
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

from services.billing.domain.documents import (
    AMOUNT,
    KIND,
    SYSTEM_ROW,
    TABLE_HEADER,
    TOTAL_ROW,
    BillSheet,
    header_fields,
    spreadsheet_row,
    title,
)
from services.common.spreadsheet import append_inert_row

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # a bill without an instant (never: drafts carry theirs)
# Column widths: characters in the XLSX, millimetres on landscape A4 (277 mm between the margins).
XLSX_WIDTHS = (14, 24, 16, 28, 20, 10, 24, 16, 10, 60)
PDF_WIDTHS = (22, 29, 22, 36, 26, 20, 24, 22, 15, 61)


class _StampedZip(ZipFile):
    """A zip whose entries all carry one timestamp (ZipFile stamps entries with the clock or a file's mtime;
    openpyxl writes worksheets from temporary files)."""

    def __init__(self, file, stamp: datetime) -> None:
        super().__init__(file, "w", ZIP_DEFLATED)
        self._stamp = stamp.timetuple()[:6]

    def writestr(self, zinfo_or_arcname, data, *args, **kwargs) -> None:
        if isinstance(zinfo_or_arcname, str):
            zinfo_or_arcname = ZipInfo(zinfo_or_arcname, self._stamp)
            zinfo_or_arcname.compress_type = ZIP_DEFLATED
            zinfo_or_arcname.external_attr = 0o600 << 16
        super().writestr(zinfo_or_arcname, data, *args, **kwargs)

    def write(self, filename, arcname=None, *args, **kwargs) -> None:
        with open(filename, "rb") as source:
            self.writestr(str(arcname or filename), source.read())


def bill_xlsx(sheet: BillSheet) -> bytes:
    """One worksheet: the title, the header fields, then the CSV's table; numbers as numbers, text inert."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.writer.excel import ExcelWriter

    book = Workbook()
    ws = book.active
    ws.title = "账单"
    append_inert_row(ws, [title(sheet)])
    ws["A1"].font = Font(bold=True, size=14, color="C00000" if sheet.status == "draft" else None)
    for label, value in header_fields(sheet):
        append_inert_row(ws, [label, value])
        ws.cell(ws.max_row, 1).font = Font(bold=True)
    append_inert_row(ws, [])
    append_inert_row(ws, TABLE_HEADER)
    header_row = ws.max_row
    for cell in ws[header_row]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDDDDD")
    for row in sheet.rows:
        append_inert_row(ws, spreadsheet_row(row))
        cells = ws[ws.max_row]
        for index, cell in enumerate(cells):
            if not isinstance(cell.value, str) and cell.value is not None:
                cell.number_format = "0.00" if index == AMOUNT else "General"
        if row[KIND] == TOTAL_ROW:
            for cell in cells:
                cell.font = Font(bold=True)
    ws.freeze_panes = ws.cell(header_row + 1, 1)
    for index, width in enumerate(XLSX_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(index)].width = width
    stamp = (sheet.issued_at or _EPOCH).astimezone(UTC).replace(tzinfo=None)
    book.properties.created = book.properties.modified = stamp
    book.properties.creator = "govmeter"
    book.properties.title = sheet.bill_id
    buffer = io.BytesIO()
    # ExcelWriter, not Workbook.save: save() stamps "modified" with the clock.
    with _StampedZip(buffer, stamp) as archive:
        ExcelWriter(book, archive).write_data()
    return buffer.getvalue()


@lru_cache(maxsize=4)
def _font_check(path: str) -> str:
    with open(path, "rb"):  # a clear error naming the missing font, before fpdf2's own
        return path


def bill_pdf(sheet: BillSheet, font_path: str) -> bytes:
    """A4 landscape: the title (a draft's in red, with its notice), the header fields, the CSV's table with its
    per-system rows shaded and the total last; page numbers and the content hash in the footer. ``font_path``: a
    CJK TrueType font or collection (``GOVMETER_PDF_FONT``; scripts/bootstrap.sh installs Debian's WenQuanYi)."""
    from fpdf import FPDF, FontFace

    font = _font_check(font_path)
    status, bill_id, content_hash = sheet.status, sheet.bill_id, sheet.content_hash

    class BillPDF(FPDF):
        def header(self) -> None:
            if status == "draft":  # a pale diagonal mark under every page's content
                self.set_font("cjk", size=90)
                self.set_text_color(245, 215, 215)
                with self.rotation(25, self.w / 2, self.h / 2):
                    self.text(self.w / 2 - 95, self.h / 2 + 15, "草稿 DRAFT")
                self.set_text_color(0, 0, 0)
                self.set_font("cjk", size=8)

        def footer(self) -> None:
            self.set_y(-10)
            self.set_font("cjk", size=7)
            self.set_text_color(90, 90, 90)
            mark = f"sha256 {content_hash}" if content_hash else "草稿 draft"
            self.cell(0, 5, f"{bill_id}  ·  {mark}  ·  第 {self.page_no()}/{{nb}} 页", align="C")

    pdf = BillPDF(orientation="L", format="A4")
    pdf.set_creation_date(sheet.issued_at or _EPOCH)
    pdf.set_title(title(sheet))
    pdf.set_producer("govmeter")
    pdf.add_font("cjk", fname=font)
    pdf.set_auto_page_break(True, margin=14)
    pdf.add_page()
    pdf.set_font("cjk", size=14)
    if status == "draft":
        pdf.set_text_color(192, 0, 0)
    pdf.multi_cell(0, 8, title(sheet), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font("cjk", size=9)
    for label, value in header_fields(sheet):
        pdf.cell(55, 5.5, label)
        pdf.multi_cell(0, 5.5, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("cjk", size=8)
    right = {TABLE_HEADER.index(name) for name in ("数量", "单价(元)", "金额(元)")}
    aligns = tuple("RIGHT" if i in right else "LEFT" for i in range(len(TABLE_HEADER)))
    shaded, total = FontFace(fill_color=(242, 242, 242)), FontFace(fill_color=(221, 221, 221))
    with pdf.table(col_widths=PDF_WIDTHS, text_align=aligns, line_height=4.5,
                   headings_style=FontFace(emphasis="", fill_color=(221, 221, 221))) as table:
        table.row(TABLE_HEADER)
        for row in sheet.rows:
            style = total if row[KIND] == TOTAL_ROW else shaded if row[KIND] == SYSTEM_ROW else None
            table.row(row, style=style)
    return bytes(pdf.output())
