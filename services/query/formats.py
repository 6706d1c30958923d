"""How the reports are written out: CSV (streamed) and XLSX (formula-safe: text cells stay inert), percentages as
text, and the report parameters they share (format, lang, day)."""

from __future__ import annotations

import io
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Iterator, Sequence

from fastapi.responses import Response, StreamingResponse

from services.common.http import unprocessable
from services.common.spreadsheet import InertCsvWriter, append_inert_row
from services.query.domain.labels import LANGS

FORMATS = ("json", "csv")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TENTH = Decimal("0.1")
HUNDREDTH = Decimal("0.01")


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise unprocessable("lang", f"choose from {', '.join(LANGS)}")
    return lang


def check_format(value: str, allowed: Sequence[str] = FORMATS) -> str:
    if value not in allowed:
        raise unprocessable("format", f"choose from {', '.join(allowed)}")
    return value


def parse_day(field_name: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise unprocessable(field_name, "not a date in the form YYYY-MM-DD") from None


def percent_text(value: Decimal | None, step: Decimal = HUNDREDTH) -> str | None:
    return None if value is None else f"{value.quantize(step, rounding=ROUND_HALF_UP)}"


def change_percent(current: Decimal, previous: Decimal) -> str | None:
    """(current − previous) / previous in percent to 0.1, half-up; None when there was nothing before."""
    if previous == 0:
        return None
    return percent_text((current - previous) * 100 / previous, TENTH)


def share_percent(part: Decimal, whole: Decimal) -> str | None:
    return None if whole == 0 else percent_text(part * 100 / whole, TENTH)


CSV_CHUNK = 256 * 1024  # characters of CSV text per chunk sent


def csv_response(header: list[str], rows: Iterable[Sequence[Any]], filename: str, bom: bool = True) -> Response:
    """A CSV download, streamed: ``rows`` (best a generator that builds them) are written in chunks in the thread
    pool (Starlette iterates a plain iterator there), so a large export neither waits whole in memory nor holds
    the event loop."""
    return StreamingResponse(_csv_chunks(header, rows, bom), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _csv_chunks(header: list[str], rows: Iterable[Sequence[Any]], bom: bool) -> Iterator[bytes]:
    buffer = io.StringIO()
    if bom:  # spreadsheet programs then read the Chinese labels as UTF-8 (machine formats such as FOCUS go without)
        buffer.write("\ufeff")
    writer = InertCsvWriter(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
        if buffer.tell() >= CSV_CHUNK:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def xlsx_response(sheets: list[tuple[str, list[str], list[Sequence[Any]]]], filename: str) -> Response:
    """A workbook the finance bureau opens directly: one sheet per table, bold frozen header, numbers as numbers."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    for title, header, rows in sheets:
        sheet = book.create_sheet(title[:31])
        append_inert_row(sheet, header)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            append_inert_row(sheet, row)  # Decimal cells are stored as numbers, text as inert strings
        sheet.freeze_panes = "A2"
        for index, name in enumerate(header, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = max(10, min(40, 2 * len(str(name)) + 2))
    buffer = io.BytesIO()
    book.save(buffer)
    return Response(buffer.getvalue(), media_type=XLSX_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
