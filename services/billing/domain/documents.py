"""What a bill's XLSX and printable PDF show, laid out from the bill's CSV (pure).

Both documents are read from the CSV bytes (a final bill's as stored at close, a draft's as ``bill_csv`` renders
the draft computation), so every figure on them is the CSV's own text: they match it to the fen by construction.
Text cells are taken as the CSV has them (already inert: ``services.common.spreadsheet``); the XLSX writer passes
them through the same helpers again, which leaves inert text as it is and neutralises a bill closed before cells
were inert."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from schemas.money import CURRENCY
from services.billing.domain.render import CSV_HEADER, STATUS_ZH, sha256_hex
from services.common.periods import LOCAL_TZ, month_bounds

STATUS = {zh: status for status, zh in STATUS_ZH.items()}
# The CSV's columns after the ones that repeat the bill's header on every row; the documents' table has these.
TABLE_HEADER = CSV_HEADER[5:]
KIND, QUANTITY, AMOUNT = TABLE_HEADER.index("类型"), TABLE_HEADER.index("数量"), TABLE_HEADER.index("金额(元)")
SYSTEM_ROW, TOTAL_ROW = "信息系统分项", "合计"
# Spreadsheets hold numbers as binary doubles: beyond 15 significant digits a figure would change, so it stays text.
SPREADSHEET_DIGITS = 15
DRAFT_NOTICE = "草稿：账期未结，金额仍会变化，不作结算依据 (draft: the period is open, figures may still change)"


@dataclass(frozen=True, slots=True)
class BillSheet:
    """One bill as its documents show it: the header fields and the CSV's rows (text as the CSV has it)."""

    bill_id: str
    department_id: str
    department_name: str
    period: str
    status: str  # draft | final
    rows: tuple[tuple[str, ...], ...]  # TABLE_HEADER columns, in the CSV's order (lines, systems, adjustments, total)
    issued_at: datetime | None  # final: when the period closed; draft: when computed
    content_hash: str | None  # a final bill's, as stored
    csv_sha256: str

    @property
    def total(self) -> str:
        return next(row[AMOUNT] for row in self.rows if row[KIND] == TOTAL_ROW)


def bill_sheet(csv_bytes: bytes, *, issued_at: datetime | None = None, content_hash: str | None = None) -> BillSheet:
    """The bill in ``csv_bytes`` (``render.bill_csv``'s format: UTF-8 with BOM, ``CSV_HEADER``, a total row last).
    Final bills' CSVs are stored forever: a change to the CSV's columns must keep this reading the old ones."""
    records = list(csv.reader(io.StringIO(csv_bytes.decode("utf-8-sig"), newline="")))
    header, body = records[0], records[1:]
    if header != CSV_HEADER or not body or body[-1][CSV_HEADER.index("类型")] != TOTAL_ROW:
        raise ValueError("not a govmeter bill CSV")
    total = body[-1]  # every row repeats the bill's header; the total row is always there
    return BillSheet(
        bill_id=total[0], department_id=total[1], department_name=total[2], period=total[3], status=STATUS[total[4]],
        rows=tuple(tuple(record[5:]) for record in body), issued_at=issued_at, content_hash=content_hash,
        csv_sha256=sha256_hex(csv_bytes),
    )


def title(sheet: BillSheet) -> str:
    draft = " (草稿 draft)" if sheet.status == "draft" else ""
    return f"政务云服务费用账单 Government cloud bill {sheet.bill_id}{draft}"


def header_fields(sheet: BillSheet) -> list[tuple[str, str]]:
    """(label, value) pairs of the document's header, labels in Chinese and English."""
    start, end = month_bounds(sheet.period)
    last_day = (end - timedelta(days=1)).date()
    when = "" if sheet.issued_at is None else sheet.issued_at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S %z")
    fields = [
        ("账单编号 Bill number", sheet.bill_id),
        ("部门 Department", sheet.department_name),
        ("部门编号 Department id", sheet.department_id),
        ("账期 Period", f"{sheet.period} ({start.date().isoformat()} – {last_day.isoformat()}, Asia/Shanghai)"),
        ("状态 Status", "正式 final" if sheet.status == "final" else "草稿 draft"),
        ("币种 Currency", f"{CURRENCY} (元)"),
        ("结账时间 Closed at" if sheet.status == "final" else "计算时间 As of", when),
        ("合计 Total (元)", sheet.total),
    ]
    if sheet.content_hash is not None:
        fields.append(("内容哈希 Content hash (sha256)", sheet.content_hash))
    fields.append(("CSV sha256", sheet.csv_sha256))
    if sheet.status == "draft":
        fields.append(("注意 Note", DRAFT_NOTICE))
    return fields


def spreadsheet_value(text: str) -> Decimal | str:
    """A quantity or amount cell: a number when a spreadsheet holds it exactly, else the CSV's text."""
    if not text:
        return text
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    digits = len(number.as_tuple().digits)
    return number if number.is_finite() and digits <= SPREADSHEET_DIGITS else text


def spreadsheet_row(row: tuple[str, ...]) -> list[Decimal | str]:
    """A table row for the XLSX: quantity and amount as numbers (within ``SPREADSHEET_DIGITS``), the rest text."""
    return [spreadsheet_value(v) if i in (QUANTITY, AMOUNT) else v for i, v in enumerate(row)]


def attachment_name(bill_id: str, extension: str) -> str:
    """A Content-Disposition value for the bill's file: ASCII ``filename`` and RFC 6266's ``filename*`` (UTF-8)."""
    name = f"{bill_id}.{extension}"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_").replace("\\", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
