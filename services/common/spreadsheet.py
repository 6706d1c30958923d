"""Cells that a spreadsheet shows and never evaluates, for every CSV and XLSX govmeter writes (pure).

OWASP's CSV-injection guidance: a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is read as a formula (``=HYPERLINK(...)`` in a department name or an information system would become a
live link on a final bill, kept forever), so such a cell gets a leading ``'``, which spreadsheets take as "text".
The full-width forms ``＝ ＋ － ＠`` are treated alike: Chinese input methods type them, and some spreadsheets
convert them. Numbers stay numbers: a value that is not a string, or a string that is a plain decimal number
(``-12.50``: a credit, a negative change), is written as it is. In XLSX, text is also stored with the string
type, so that no cell is ever a formula, and the control characters XLSX cannot hold become U+FFFD.

(defusedcsv does the CSV part, but it leaves tabs and carriage returns alone, rewrites ``|``, and has nothing for
XLSX; one rule for both formats is the point.)"""

from __future__ import annotations

import csv
import re
from typing import Any, Iterable, Sequence

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")
# The characters the XLSX format cannot store (openpyxl refuses them): C0 controls but tab, newline, return.
XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def inert_cell(value: Any) -> Any:
    """``value`` as a cell no spreadsheet evaluates: text that would start a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def inert_row(row: Iterable[Any]) -> list[Any]:
    return [inert_cell(value) for value in row]


class InertCsvWriter:
    """``csv.writer`` whose rows go through ``inert_row``."""

    def __init__(self, out, **options) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow(inert_row(row))


def append_inert_row(sheet, row: Sequence[Any]) -> None:
    """Append ``row`` to an openpyxl worksheet: numbers as numbers, every string as an inert string cell."""
    sheet.append([XLSX_ILLEGAL.sub("\ufffd", v) if isinstance(v, str) else v for v in inert_row(row)])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"  # openpyxl would store a string that starts with "=" as a formula
