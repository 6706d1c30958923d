"""What the report routers share: formats (JSON, CSV, XLSX), figures as text, periods, and the reads that
several reports make (department names, usage per day, utilisation statistics, allocated capacity, prices)."""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Iterator, Sequence

from fastapi.responses import Response, StreamingResponse

from services.common.http import unprocessable
from services.common.periods import local_midnight
from services.common.spreadsheet import InertCsvWriter, append_inert_row
from services.metering.domain.rating import RateCardPrices, card_at
from services.metering.utilization import BUCKETS, percentile

FORMATS = ("json", "csv")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TENTH = Decimal("0.1")
HUNDREDTH = Decimal("0.01")


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


def day_bounds(first: date, end: date) -> tuple[datetime, datetime]:
    """UTC-comparable instants of [local midnight of ``first``, local midnight of ``end``)."""
    return local_midnight(first), local_midnight(end)


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


# --- reads ------------------------------------------------------------------------------------------------------


async def department_names(conn, ids: Iterable[str | None] | None = None) -> dict[str, str]:
    if ids is None:
        rows = await conn.fetch("SELECT id, name FROM departments")
    else:
        rows = await conn.fetch("SELECT id, name FROM departments WHERE id = ANY($1::text[])",
                                [i for i in set(ids) if i is not None])
    return {r["id"]: r["name"] for r in rows}


@dataclass
class UsageFigure:
    quantity: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)
    unpriced_quantity: Decimal = Decimal(0)

    def add(self, quantity: Decimal, amount: Decimal, unpriced: Decimal = Decimal(0)) -> None:
        self.quantity += quantity
        self.amount += amount
        self.unpriced_quantity += unpriced


async def daily_usage(conn, first: date, end: date, department: str | None = None,
                      attributed_only: bool = False) -> list:
    """usage_daily rows summed per (department, system, meter) over local days [first, end)."""
    args: list[Any] = [first, end]
    where = "day >= $1 AND day < $2"
    if department is not None:
        args.append(department)
        where += f" AND department_id = ${len(args)}"
    elif attributed_only:
        where += " AND department_id IS NOT NULL"
    return await conn.fetch(
        f"""
        SELECT department_id, system, meter, sum(quantity) AS quantity, sum(amount) AS amount,
               sum(unpriced_quantity) AS unpriced
        FROM usage_daily WHERE {where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
        *args,
    )


@dataclass
class UtilizationFigures:
    observed_ms: int = 0
    cpu_sum: Decimal = Decimal(0)
    memory_sum: Decimal = Decimal(0)
    cpu_max: Decimal | None = None
    memory_max: Decimal | None = None
    cpu_hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    memory_hist: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    @property
    def cpu_average(self) -> Decimal | None:
        return self.cpu_sum / self.observed_ms if self.observed_ms else None

    @property
    def memory_average(self) -> Decimal | None:
        return self.memory_sum / self.observed_ms if self.observed_ms else None

    @property
    def cpu_p95(self) -> Decimal | None:
        return percentile(self.cpu_hist, maximum=self.cpu_max)

    @property
    def memory_p95(self) -> Decimal | None:
        return percentile(self.memory_hist, maximum=self.memory_max)


# Each utilisation hour belongs to the owner holding the resource in that hour (the earlier owner if it changed
# hands within the hour).
_OWNED_UTILIZATION = """
    SELECT DISTINCT ON (u.hour, u.resource_id) u.*, ri.department_id, ri.system
    FROM utilization_hourly u
    JOIN resource_intervals ri ON ri.resource_id = u.resource_id
         AND ri.valid_from < u.hour + interval '1 hour' AND (ri.valid_to IS NULL OR ri.valid_to > u.hour)
    WHERE u.hour >= $1 AND u.hour < $2
    ORDER BY u.hour, u.resource_id, ri.valid_from
"""


async def utilization_figures(conn, start: datetime, end: datetime, by: str,
                              department: str | None = None) -> dict[tuple, UtilizationFigures]:
    """Utilisation over [start, end) per (department_id, system) (``by="system"``) or per
    (department_id, resource_id) (``by="resource"``)."""
    keys = "department_id, system" if by == "system" else "department_id, resource_id"
    args: list[Any] = [start, end]
    scope = ""
    if department is not None:
        args.append(department)
        scope = f"WHERE department_id = ${len(args)}"
    totals = await conn.fetch(
        f"""
        WITH owned AS ({_OWNED_UTILIZATION})
        SELECT {keys}, sum(observed_ms) AS ms, sum(cpu_sum) AS cs, sum(memory_sum) AS mems,
               max(cpu_max) AS cm, max(memory_max) AS mm
        FROM owned {scope} GROUP BY {keys}
        """,
        *args,
    )
    histograms = await conn.fetch(
        f"""
        WITH owned AS ({_OWNED_UTILIZATION})
        SELECT {keys}, h.i, sum(h.c) AS c, sum(h.m) AS m
        FROM owned, unnest(owned.cpu_hist, owned.memory_hist) WITH ORDINALITY AS h(c, m, i) {scope}
        GROUP BY {keys}, h.i
        """,
        *args,
    )
    figures: dict[tuple, UtilizationFigures] = {}
    for r in totals:
        figures[(r[0], r[1])] = UtilizationFigures(int(r["ms"]), r["cs"], r["mems"], r["cm"], r["mm"])
    for r in histograms:
        target = figures[(r[0], r[1])]
        target.cpu_hist[r["i"] - 1] = int(r["c"])
        target.memory_hist[r["i"] - 1] = int(r["m"])
    return figures


# Allocated capacity: spec fields read from lifecycle specs, averaged over the period by the time they were held.
CAPACITY_FIELDS = {"vcpu": "vcpu", "memory_gib": "memory_gib", "storage_gib": "size_gib"}


@dataclass
class Allocation:
    resources: set[str] = field(default_factory=set)
    capacity: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))


def spec_number(spec: dict, key: str) -> Decimal | None:
    value = spec.get(key) if isinstance(spec, dict) else None
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


async def allocations(conn, start: datetime, end: datetime, department: str | None = None) -> dict[tuple, Allocation]:
    """Per (department_id, system): resources held at any time in [start, end) and the time-weighted average
    allocated capacity (Σ spec value × hours held in the period ÷ hours in the period)."""
    args: list[Any] = [start, end]
    where = "valid_from < $2 AND (valid_to IS NULL OR valid_to > $1)"
    if department is not None:
        args.append(department)
        where += f" AND department_id = ${len(args)}"
    rows = await conn.fetch(
        f"SELECT resource_id, valid_from, valid_to, department_id, system, spec FROM resource_intervals WHERE {where}",
        *args,
    )
    period = Decimal((end - start).total_seconds())
    result: dict[tuple, Allocation] = defaultdict(Allocation)
    for r in rows:
        held = min(r["valid_to"] or end, end) - max(r["valid_from"], start)
        target = result[(r["department_id"], r["system"])]
        target.resources.add(r["resource_id"])
        for name, key in CAPACITY_FIELDS.items():
            value = spec_number(r["spec"], key)
            if value is not None:
                target.capacity[name] += value * Decimal(held.total_seconds()) / period
    return dict(result)


def current_prices(cards: list[RateCardPrices], instant: datetime) -> dict[str, Decimal]:
    """Unit prices in force at ``instant``; a graduated price counts at its lowest tier (never overstates)."""
    card = card_at(cards, instant)
    if card is None:
        return {}
    prices = dict(card.flat)
    for meter, tiers in card.tiered.items():
        prices[meter] = min(t.unit_price for t in tiers)
    return prices

