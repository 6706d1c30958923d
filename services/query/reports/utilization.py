"""``GET /v1/reports/utilization``: the weekly and monthly utilisation report (Art. 12): per department and
information system, allocated capacity, consumed meter quantities, cost, average and p95 CPU/memory utilisation,
and the change against the previous period.

* A week is 7 local days from ``start``; a month is the calendar month that ``start`` (its 1st) opens. The
  previous period is the week before, or the previous calendar month.
* Allocated capacity is time-weighted over the period (vCPU, memory GiB, storage GiB from lifecycle specs).
* Quantities and cost come from the daily rollup (what /v1/usage shows); each cost is its exact sum rounded
  once, half-up, to the fen. Changes are percentages to 0.1 (null when the previous figure is 0).
* Utilisation is time-weighted over every observed resource-hour of the system; p95 from the summed 1-point
  histograms (see ``services.metering.utilization``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends

from schemas.api import Role
from schemas.catalogue import unit_of
from schemas.reports import UtilizationReport
from services.common.auth import Principal, require_roles
from services.common.db import get_engine, raw_connection
from schemas.money import quantity_text, yuan_text
from services.common.http import unprocessable
from services.common.http_guards import DepartmentParam
from services.common.periods import Month
from services.common.scope import Rollup, read_scope
from services.query.domain.figures import UsageFigure, UtilizationFigures
from services.query.domain.labels import column, meter_name
from services.query.formats import (
    TENTH,
    change_percent,
    check_format,
    check_lang,
    csv_response,
    parse_day,
    percent_text,
)
from services.query.views import allocations, daily_usage, day_bounds, department_names, utilization_figures

router = APIRouter(tags=["reports"])
Reader = Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.PROVIDER, Role.ADMIN, Role.DEPARTMENT))]
PERIODS = ("week", "month")


def period_of(period: str, start: date) -> tuple[date, date, date]:
    """(first day, end day exclusive, first day of the previous period)."""
    if period == "week":
        return start, start + timedelta(days=7), start - timedelta(days=7)
    if start.day != 1:
        raise unprocessable("start", "a month report starts on the 1st of a month")
    month = Month(start.year, start.month)
    return start, month.next().first_day, month.previous().first_day


async def utilization_report(period: str, start: date, departments: Sequence[str] | None, lang: str) -> dict:
    first, end, previous_first = period_of(period, start)
    engine = get_engine()
    async with raw_connection(engine) as conn:
        current = await daily_usage(conn, first, end, departments, attributed_only=True)
        previous = await daily_usage(conn, previous_first, first, departments, attributed_only=True)
        t0, t1 = day_bounds(first, end)
        p0, _ = day_bounds(previous_first, first)
        utilization = await utilization_figures(conn, t0, t1, "system", departments)
        previous_utilization = await utilization_figures(conn, p0, t0, "system", departments)
        allocated = await allocations(conn, t0, t1, departments)
        usage: dict[tuple, dict[str, UsageFigure]] = defaultdict(lambda: defaultdict(UsageFigure))
        before: dict[tuple, dict[str, UsageFigure]] = defaultdict(lambda: defaultdict(UsageFigure))
        for target, rows in ((usage, current), (before, previous)):
            for r in rows:
                target[(r["department_id"], r["system"])][r["meter"]].add(r["quantity"], r["amount"], r["unpriced"])
        keys = sorted(set(usage) | set(before) | set(utilization) | set(allocated), key=lambda k: (k[0], k[1] or ""))
        names = await department_names(conn, [k[0] for k in keys])
    rows = [row_out(key, usage.get(key, {}), before.get(key, {}), utilization.get(key, UtilizationFigures()),
                    previous_utilization.get(key, UtilizationFigures()), allocated.get(key), names, lang)
            for key in keys]
    return {
        "period": period, "start": first.isoformat(), "end": end.isoformat(),
        "previous_start": previous_first.isoformat(), "currency": "CNY", "lang": lang, "rows": rows,
    }


def row_out(key: tuple, meters_now: dict[str, UsageFigure], meters_before: dict[str, UsageFigure],
            figures: UtilizationFigures, earlier: UtilizationFigures, held, names: dict[str, str], lang: str) -> dict:
    """One department and information system: capacity, meters, cost and utilisation against the period before."""
    department_id, system = key
    cost = sum((f.amount for f in meters_now.values()), Decimal(0))
    previous_cost = sum((f.amount for f in meters_before.values()), Decimal(0))
    return {
        "department_id": department_id,
        "department_name": names.get(department_id, department_id),
        "system": system,
        "resources": len(held.resources) if held else 0,
        "allocated": {name: quantity_text(value.quantize(Decimal("0.01")).normalize())
                      for name, value in sorted(held.capacity.items())} if held else {},
        "meters": [
            {
                "meter": meter, "name": meter_name(meter, lang), "unit": unit_of(meter),
                "quantity": quantity_text(meters_now[meter].quantity) if meter in meters_now else "0",
                "amount": yuan_text(meters_now[meter].amount) if meter in meters_now else "0.00",
                "previous_quantity": (quantity_text(meters_before[meter].quantity)
                                      if meter in meters_before else "0"),
                "quantity_change_percent": change_percent(
                    meters_now[meter].quantity if meter in meters_now else Decimal(0),
                    meters_before[meter].quantity if meter in meters_before else Decimal(0)),
            }
            for meter in sorted(set(meters_now) | set(meters_before))
        ],
        "cost": yuan_text(cost),
        "previous_cost": yuan_text(previous_cost),
        "cost_change_percent": change_percent(cost, previous_cost),
        "cpu_average": percent_text(figures.cpu_average),
        "cpu_p95": percent_text(figures.cpu_p95, TENTH),
        "memory_average": percent_text(figures.memory_average),
        "memory_p95": percent_text(figures.memory_p95, TENTH),
        "previous_cpu_average": percent_text(earlier.cpu_average),
        "previous_memory_average": percent_text(earlier.memory_average),
    }


CSV_COLUMNS = [
    "department_id", "department_name", "system", "resources", "allocated_vcpu", "allocated_memory_gib",
    "allocated_storage_gib", "meter", "meter_name", "unit", "quantity", "previous_quantity",
    "quantity_change_percent", "amount", "cost", "previous_cost", "cost_change_percent", "cpu_average", "cpu_p95",
    "memory_average", "memory_p95", "previous_cpu_average", "previous_memory_average",
]


def csv_rows(report: dict) -> list[list]:
    """One line per department, system and meter; the system's figures repeat on each of its lines."""
    lines = []
    for row in report["rows"]:
        shared = {
            **{k: row[k] for k in ("department_id", "department_name", "system", "resources", "cost",
                                   "previous_cost", "cost_change_percent", "cpu_average", "cpu_p95",
                                   "memory_average", "memory_p95", "previous_cpu_average",
                                   "previous_memory_average")},
            **{f"allocated_{k}": v for k, v in row["allocated"].items()},
        }
        for meter in row["meters"] or [{}]:
            line = {**shared, **{k if k != "name" else "meter_name": v for k, v in meter.items()}}
            lines.append([line.get(c) for c in CSV_COLUMNS])
    return lines


@router.get("/v1/reports/utilization", response_model=UtilizationReport,
            responses={200: {"content": {"text/csv": {}}}})
async def get_utilization_report(principal: Reader, period: str, start: str, department: DepartmentParam = None,
                                 format: str = "json", lang: str = "zh", rollup: Rollup = False):
    """Weekly or monthly utilisation per department and information system. Finance, provider and admin see
    every department; a department token sees its own (403 for another)."""
    check_lang(lang)
    check_format(format)
    if period not in PERIODS:
        raise unprocessable("period", f"choose from {', '.join(PERIODS)}")
    report = await utilization_report(period, parse_day("start", start),
                                      (await read_scope(principal, department, rollup)).ids, lang)
    if format == "csv":
        return csv_response([column(c, lang) for c in CSV_COLUMNS], csv_rows(report),
                            f"govmeter-utilization-{period}-{report['start']}.csv")
    return report
