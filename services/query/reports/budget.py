"""``GET /v1/reports/budget-basis?year=YYYY``: the basis for a department's IT budget of ``year`` (Art. 19),
for finance and admin: the trailing 12 months' spend by service family and month, its trend, the waste
identified at the end of those months, and the proposed basis (formula in ``basis``). JSON, CSV or XLSX.

The 12 months end with ``through`` (YYYY-MM), by default December of the year before ``year``. Spend is what
the bills charged (``billed_spend``): final bills as issued and open months' drafts, their lines, late
adjustments and manual adjustments (dispute credits included); ``by=system`` breaks it down by information system.
Waste is the waste report's as of the 1st after ``through``: per resource its largest monthly saving."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends

from schemas.api import Role
from schemas.catalogue import meters
from schemas.money import yuan_text
from schemas.reports import BudgetBasisReport
from services.common.auth import Principal
from services.common.db import get_engine, raw_connection
from services.common.http import month_param, unprocessable
from services.common.periods import Month
from services.common.scope import require_city_wide
from services.query.domain.basis import CAP_RATIO, FLOOR_RATIO, budget_basis, waste_by_department
from services.query.domain.budget_views import (VIEWS, department_months, detail_rows, group_columns, group_values,
                                                system_totals)
from services.query.domain.labels import column
from services.query.formats import check_format, check_lang, csv_response, xlsx_response
from services.query.reports.billed_spend import billed_spend
from services.query.reports.waste import waste_findings
from services.query.views import department_names

router = APIRouter(tags=["reports"])
Finance = Annotated[Principal, Depends(require_city_wide(Role.FINANCE, Role.ADMIN))]
ThroughQuery = Annotated[Month | None, Depends(month_param("through", required=False))]

FORMULA = {
    "zh": ("建议预算基数 = max(0, min(max(趋势外推, 0.8×近12个月支出), 1.3×近12个月支出)"
           " − 12×已识别浪费的每月可节省额)；趋势外推 = 12×月均支出 + 斜率×(6n+72)，"
           "斜率为近n=12个月月度支出的最小二乘线性趋势（元/月）；按分四舍五入。"),
    "en": ("proposed basis = max(0, min(max(trend projection, 0.8 × trailing-12-month spend), 1.3 × trailing-12-month "
           "spend) − 12 × monthly saving of the identified waste); trend projection = 12 × monthly mean + slope × "
           "(6n + 72), the slope being the least-squares linear trend of the n = 12 monthly spends (yuan/month); "
           "rounded half-up to the fen."),
}


async def budget_report(year: int, through: Month, lang: str, view: str = "family") -> dict:
    months = [str(m) for m in through.trailing(12)]
    spend = await billed_spend(months)
    findings, _ = await waste_findings(through.next().first_day, None, lang)
    waste, finding_count = waste_by_department(findings)
    async with raw_connection(get_engine()) as conn:
        names = await department_names(conn, spend)
    family_of = {key: meter.family for key, meter in meters().items()}
    departments = []
    for department in sorted(spend):
        month_rows, totals, monthly = department_months(spend[department], months, view, family_of)
        basis = budget_basis(monthly, waste.get(department, Decimal(0)))
        departments.append({
            "department_id": department, "department_name": names.get(department, department),
            "months": month_rows, **totals,
            "actual_12_months": yuan_text(basis.actual), "monthly_mean": yuan_text(basis.monthly_mean),
            "trend_per_month": yuan_text(basis.trend_per_month), "projected": yuan_text(basis.projected),
            "bounded": yuan_text(basis.bounded), "annual_waste": yuan_text(basis.annual_waste),
            "proposed_basis": yuan_text(basis.proposed), "waste_findings": finding_count.get(department, 0),
        })
    return {
        "year": year, "months": months, "currency": "CNY", "lang": lang, "formula": FORMULA[lang],
        "departments": departments,
        "total_proposed_basis": yuan_text(sum((Decimal(d["proposed_basis"]) for d in departments), Decimal(0))),
    }


SUMMARY = ["department_id", "department_name", "actual_12_months", "monthly_mean", "trend_per_month", "projected",
           "bounded", "annual_waste", "proposed_basis"]


def summary_table(report: dict, lang: str, as_numbers: bool, view: str = "family") -> tuple[list[str], list[list]]:
    header = [column(c, lang) for c in SUMMARY[:2]] + group_columns(view, lang)
    header += report["months"] + [column(c, lang) for c in SUMMARY[2:]]
    convert = (lambda v: Decimal(v)) if as_numbers else (lambda v: v)
    rows = []
    for d in report["departments"]:
        rows.append([d["department_id"], d["department_name"]] + [convert(v) for v in group_values(d, view)]
                    + [convert(m["amount"]) for m in d["months"]] + [convert(d[c]) for c in SUMMARY[2:]])
    return header, rows


@router.get("/v1/reports/budget-basis", response_model=BudgetBasisReport,
            responses={200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument"
                                                             ".spreadsheetml.sheet": {}}}})
async def get_budget_basis(principal: Finance, year: int, through: ThroughQuery, format: str = "json",
                           lang: str = "zh", by: str = "family"):
    """Per department: trailing 12 months' spend as billed (adjustments and dispute credits included) by service
    family, or by information system with ``by=system``, and month, trend, identified waste and the proposed
    basis for ``year``. ``format=xlsx`` gives a workbook with headers in the chosen language."""
    check_lang(lang)
    check_format(format, ("json", "csv", "xlsx"))
    if by not in VIEWS:
        raise unprocessable("by", f"choose from {', '.join(VIEWS)}")
    if not 2000 <= year <= 9999:
        raise unprocessable("year", "a four-digit year")
    report = await budget_report(year, through or Month(year - 1, 12), lang, by)
    filename = f"govmeter-budget-basis-{year}" + ("-by-system" if by == "system" else "")
    if format == "csv":
        header, rows = summary_table(report, lang, as_numbers=False, view=by)
        return csv_response(header, rows, filename + ".csv")
    if format == "xlsx":
        return workbook(report, lang, by, filename + ".xlsx")
    return report


def workbook(report: dict, lang: str, view: str, filename: str):
    """The summary, the monthly detail (per family or system) and the method, one sheet each, numbers as numbers;
    by system, the systems' totals too."""
    header, rows = summary_table(report, lang, as_numbers=True, view=view)
    detail_header, detail = detail_rows(report, view, lang)
    notes_header = ["说明" if lang == "zh" else "Notes"]
    span = f"{report['months'][0]} – {report['months'][-1]}"
    notes = [[report["formula"]], [f"{'区间' if lang == 'zh' else 'Months'}: {span}"],
             [f"{'下限/上限' if lang == 'zh' else 'Bounds'}: {FLOOR_RATIO} / {CAP_RATIO}"]]
    titles = ("预算依据", "月度明细", "计算方法") if lang == "zh" else ("Budget basis", "Monthly detail", "Method")
    sheets = [(titles[0], header, rows), (titles[1], detail_header, detail), (titles[2], notes_header, notes)]
    if view == "system":
        sheets.insert(1, ("按信息系统" if lang == "zh" else "By information system", *system_totals(report, lang)))
    return xlsx_response(sheets, filename)
