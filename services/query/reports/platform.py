"""``GET /v1/reports/platform?month=YYYY-MM``: the monthly analysis report of Art. 12(5), for the provider,
finance and admin: platform-wide use per service family (from the meter catalogue) with growth against the
previous month, the top departments by spend, unattributed usage, and dead letters.

All figures include unattributed usage except the department ranking. A dead letter counts in the month of its
event's ``time`` when the event can be read, otherwise in the month it was received. Amounts are exact sums
rounded once, half-up, to the fen; growth is in percent to 0.1 (null when the previous month had none)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends

from schemas.api import Role
from schemas.catalogue import meters, unit_of
from schemas.reports import PlatformReport
from services.common.auth import Principal, require_roles
from services.common.db import get_engine, raw_connection
from services.common.money import quantity_text, yuan_text
from services.common.http import MonthQuery
from services.common.periods import month_bounds, previous_month
from services.query.reports.common import (
    UsageFigure,
    change_percent,
    department_names,
    share_percent,
)
from services.query.reports.labels import check_lang, family_name, meter_name

router = APIRouter(tags=["reports"])
Analyst = Annotated[Principal, Depends(require_roles(Role.PROVIDER, Role.FINANCE, Role.ADMIN))]
TOP_DEPARTMENTS = 10


async def _usage(conn, month: str):
    start, end = month_bounds(month)
    return await conn.fetch(
        """
        SELECT department_id, meter, sum(quantity) AS quantity, sum(amount) AS amount
        FROM usage_daily WHERE day >= $1 AND day < $2 GROUP BY 1, 2
        """,
        start.date(), end.date(),
    )


async def platform_report(month: str, lang: str) -> dict:
    previous = previous_month(month)
    start, end = month_bounds(month)
    async with raw_connection(get_engine()) as conn:
        now_rows, before_rows = await _usage(conn, month), await _usage(conn, previous)
        counts = await conn.fetchrow(
            """
            SELECT count(DISTINCT department_id) AS departments, count(DISTINCT resource_id) AS resources,
                   count(DISTINCT resource_id) FILTER (WHERE department_id IS NULL) AS unattributed
            FROM usage_hourly WHERE hour >= $1 AND hour < $2
            """,
            start, end,
        )
        letters = await conn.fetch(
            """
            SELECT reason, count(*) AS n FROM dead_letters
            WHERE coalesce(govmeter_event_time(payload), created_at) >= $1
              AND coalesce(govmeter_event_time(payload), created_at) < $2
            GROUP BY reason ORDER BY reason
            """,
            start, end,
        )
        by_meter: dict[str, UsageFigure] = defaultdict(UsageFigure)
        by_meter_before: dict[str, UsageFigure] = defaultdict(UsageFigure)
        by_department: dict[str, Decimal] = defaultdict(Decimal)
        by_department_before: dict[str, Decimal] = defaultdict(Decimal)
        unattributed: dict[str, UsageFigure] = defaultdict(UsageFigure)
        for rows, meter_target, department_target in ((now_rows, by_meter, by_department),
                                                      (before_rows, by_meter_before, by_department_before)):
            for r in rows:
                meter_target[r["meter"]].add(r["quantity"], r["amount"])
                if r["department_id"] is not None:
                    department_target[r["department_id"]] += r["amount"]
                elif rows is now_rows:
                    unattributed[r["meter"]].add(r["quantity"], r["amount"])
        ranking = sorted(by_department.items(), key=lambda item: (-item[1], item[0]))[:TOP_DEPARTMENTS]
        names = await department_names(conn, [d for d, _ in ranking])
    catalogue = meters()
    total = sum((f.amount for f in by_meter.values()), Decimal(0))
    total_before = sum((f.amount for f in by_meter_before.values()), Decimal(0))
    families = []
    for family in sorted({m.family for m in catalogue.values()}):
        keys = sorted(k for k, m in catalogue.items() if m.family == family and (k in by_meter or k in by_meter_before))
        amount = sum((by_meter[k].amount for k in keys if k in by_meter), Decimal(0))
        amount_before = sum((by_meter_before[k].amount for k in keys if k in by_meter_before), Decimal(0))
        families.append({
            "family": family, "name": family_name(family, lang), "amount": yuan_text(amount),
            "previous_amount": yuan_text(amount_before), "growth_percent": change_percent(amount, amount_before),
            "meters": [
                {
                    "meter": k, "name": meter_name(k, lang), "unit": unit_of(k),
                    "quantity": quantity_text(by_meter[k].quantity) if k in by_meter else "0",
                    "previous_quantity": quantity_text(by_meter_before[k].quantity) if k in by_meter_before else "0",
                    "growth_percent": change_percent(
                        by_meter[k].quantity if k in by_meter else Decimal(0),
                        by_meter_before[k].quantity if k in by_meter_before else Decimal(0)),
                    "amount": yuan_text(by_meter[k].amount if k in by_meter else Decimal(0)),
                    "previous_amount": yuan_text(by_meter_before[k].amount if k in by_meter_before else Decimal(0)),
                }
                for k in keys
            ],
        })
    unattributed_amount = sum((f.amount for f in unattributed.values()), Decimal(0))
    return {
        "month": month, "previous_month": previous, "currency": "CNY", "lang": lang,
        "total": {"amount": yuan_text(total), "previous_amount": yuan_text(total_before),
                  "growth_percent": change_percent(total, total_before),
                  "departments": counts["departments"], "resources": counts["resources"]},
        "families": families,
        "top_departments": [
            {"rank": rank, "department_id": d, "department_name": names.get(d, d), "amount": yuan_text(amount),
             "share_percent": share_percent(amount, total),
             "previous_amount": yuan_text(by_department_before.get(d, Decimal(0))),
             "growth_percent": change_percent(amount, by_department_before.get(d, Decimal(0)))}
            for rank, (d, amount) in enumerate(ranking, start=1)
        ],
        "unattributed": {
            "amount": yuan_text(unattributed_amount), "share_percent": share_percent(unattributed_amount, total),
            "resources": counts["unattributed"],
            "meters": [{"meter": k, "name": meter_name(k, lang), "unit": unit_of(k),
                        "quantity": quantity_text(f.quantity), "amount": yuan_text(f.amount)}
                       for k, f in sorted(unattributed.items())],
        },
        "dead_letters": {"total": sum(r["n"] for r in letters), "by_reason": {r["reason"]: r["n"] for r in letters}},
    }


@router.get("/v1/reports/platform", response_model=PlatformReport)
async def get_platform_report(principal: Analyst, month: MonthQuery, lang: str = "zh"):
    """The monthly platform analysis (Art. 12(5)): use per service family and its growth, top departments,
    unattributed usage, dead letters."""
    check_lang(lang)
    return await platform_report(str(month), lang)
