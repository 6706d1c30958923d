"""``GET /v1/reports/platform?month=YYYY-MM``: the monthly analysis report of Art. 12(5), for the provider,
finance and admin: platform-wide use per service family (from the meter catalogue) with growth against the
previous month, the top departments by spend, unattributed usage, and dead letters.

All figures include unattributed usage except the department ranking. A dead letter counts in the month of its
event's ``time`` when the event can be read, otherwise in the month it was received. Amounts are exact sums
rounded once, half-up, to the fen; growth is in percent to 0.1 (null when the previous month had none)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends

from schemas.api import Role
from schemas.catalogue import meters, unit_of
from schemas.reports import PlatformReport
from services.common.auth import Principal
from services.common.db import get_engine, raw_connection
from services.common.http import MonthQuery
from schemas.money import quantity_text, yuan_text
from services.common.periods import Month
from services.common.scope import require_city_wide
from services.query.domain.figures import UsageFigure
from services.query.domain.labels import family_name, meter_name
from services.query.domain.platform import Tally, tally, top_departments
from services.query.formats import change_percent, check_lang, share_percent
from services.query.views import department_names, late_applications, platform_reads

router = APIRouter(tags=["reports"])
Analyst = Annotated[Principal, Depends(require_city_wide(Role.PROVIDER, Role.FINANCE, Role.ADMIN))]
_NONE = UsageFigure()


async def platform_report(month: Month, lang: str) -> dict:
    async with raw_connection(get_engine()) as conn:
        reads = await platform_reads(conn, month)
        now, before = tally(reads.usage), tally(reads.usage_before)
        ranking = top_departments(now.by_department)
        names = await department_names(conn, [d for d, _ in ranking])
        applications = await late_applications(conn, *month.bounds)
    total, total_before = now.total, before.total
    unattributed_amount = sum((f.amount for f in now.unattributed.values()), Decimal(0))
    return {
        "month": str(month), "previous_month": str(month.previous()), "currency": "CNY", "lang": lang,
        "total": {"amount": yuan_text(total), "previous_amount": yuan_text(total_before),
                  "growth_percent": change_percent(total, total_before),
                  "departments": reads.counts["departments"], "resources": reads.counts["resources"]},
        "families": families_out(now, before, lang),
        "top_departments": [
            {"rank": rank, "department_id": d, "department_name": names.get(d, d), "amount": yuan_text(amount),
             "share_percent": share_percent(amount, total),
             "previous_amount": yuan_text(before.by_department.get(d, Decimal(0))),
             "growth_percent": change_percent(amount, before.by_department.get(d, Decimal(0)))}
            for rank, (d, amount) in enumerate(ranking, start=1)
        ],
        "unattributed": {
            "amount": yuan_text(unattributed_amount), "share_percent": share_percent(unattributed_amount, total),
            "resources": reads.counts["unattributed"],
            "meters": [{"meter": k, "name": meter_name(k, lang), "unit": unit_of(k),
                        "quantity": quantity_text(f.quantity), "amount": yuan_text(f.amount)}
                       for k, f in sorted(now.unattributed.items())],
        },
        "dead_letters": {"total": sum(r["n"] for r in reads.dead_letters),
                         "by_reason": {r["reason"]: r["n"] for r in reads.dead_letters}},
        "applications": applications,
    }


def families_out(now: Tally, before: Tally, lang: str) -> list[dict]:
    """Per service family of the catalogue: its amount, the previous month's and the growth, and its meters."""
    catalogue = meters()
    families = []
    for family in sorted({m.family for m in catalogue.values()}):
        keys = sorted(k for k, m in catalogue.items()
                      if m.family == family and (k in now.by_meter or k in before.by_meter))
        amount = sum((now.by_meter[k].amount for k in keys if k in now.by_meter), Decimal(0))
        amount_before = sum((before.by_meter[k].amount for k in keys if k in before.by_meter), Decimal(0))
        families.append({
            "family": family, "name": family_name(family, lang), "amount": yuan_text(amount),
            "previous_amount": yuan_text(amount_before), "growth_percent": change_percent(amount, amount_before),
            "meters": [meter_out(k, now.by_meter.get(k), before.by_meter.get(k), lang) for k in keys],
        })
    return families


def meter_out(meter: str, figure: UsageFigure | None, earlier: UsageFigure | None, lang: str) -> dict:
    return {
        "meter": meter, "name": meter_name(meter, lang), "unit": unit_of(meter),
        "quantity": quantity_text(figure.quantity) if figure else "0",
        "previous_quantity": quantity_text(earlier.quantity) if earlier else "0",
        "growth_percent": change_percent((figure or _NONE).quantity, (earlier or _NONE).quantity),
        "amount": yuan_text((figure or _NONE).amount),
        "previous_amount": yuan_text((earlier or _NONE).amount),
    }


@router.get("/v1/reports/platform", response_model=PlatformReport)
async def get_platform_report(principal: Analyst, month: MonthQuery, lang: str = "zh"):
    """The monthly platform analysis (Art. 12(5)): use per service family and its growth, top departments,
    unattributed usage, dead letters."""
    check_lang(lang)
    return await platform_report(month, lang)
