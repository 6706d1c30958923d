"""``GET /v1/reports/budget-basis?year=YYYY``: the basis for a department's IT budget of ``year`` (Art. 19),
for finance and admin: the trailing 12 months' spend by service family and month, its trend, the waste
identified at the end of those months, and the proposed basis (formula in ``basis``). JSON, CSV or XLSX.

The 12 months end with ``through`` (YYYY-MM), by default December of the year before ``year``. Spend is what
the bills charge: flat-priced usage as metered, graduated prices over the month-to-date quantity (``charges``).
Waste is the waste report's as of the 1st after ``through``: per resource its largest monthly saving."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends

from schemas.api import Role
from schemas.catalogue import meters
from schemas.reports import BudgetBasisReport
from services.common.auth import Principal, require_roles
from services.common.db import get_engine, raw_connection
from services.common.money import yuan_text
from services.common.http import month_param, unprocessable
from services.common.periods import Month
from services.query.domain.basis import CAP_RATIO, FLOOR_RATIO, budget_basis, waste_by_department
from services.query.domain.labels import column, family_name
from services.query.formats import check_format, check_lang, csv_response, xlsx_response
from services.query.reports.waste import waste_findings
from services.query.views import department_names, monthly_spend

router = APIRouter(tags=["reports"])
Finance = Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.ADMIN))]
ThroughQuery = Annotated[Month | None, Depends(month_param("through", required=False))]
FAMILIES = ("compute", "storage", "network", "bandwidth", "security")

FORMULA = {
    "zh": ("建议预算基数 = max(0, min(max(趋势外推, 0.8×近12个月支出), 1.3×近12个月支出)"
           " − 12×已识别浪费的每月可节省额)；趋势外推 = 12×月均支出 + 斜率×(6n+72)，"
           "斜率为近n=12个月月度支出的最小二乘线性趋势（元/月）；按分四舍五入。"),
    "en": ("proposed basis = max(0, min(max(trend projection, 0.8 × trailing-12-month spend), 1.3 × trailing-12-month "
           "spend) − 12 × monthly saving of the identified waste); trend projection = 12 × monthly mean + slope × "
           "(6n + 72), the slope being the least-squares linear trend of the n = 12 monthly spends (yuan/month); "
           "rounded half-up to the fen."),
}


async def budget_report(year: int, through: Month, lang: str) -> dict:
    months = through.trailing(12)
    spend = await monthly_spend(months)
    findings, _ = await waste_findings(through.next().first_day, None, lang)
    waste, finding_count = waste_by_department(findings)
    async with raw_connection(get_engine()) as conn:
        names = await department_names(conn, spend)
    departments = [department_out(department, names.get(department, department), spend[department],
                                  [str(m) for m in months], waste.get(department, Decimal(0)),
                                  finding_count.get(department, 0))
                   for department in sorted(spend)]
    return {
        "year": year, "months": [str(m) for m in months], "currency": "CNY", "lang": lang,
        "formula": FORMULA[lang], "departments": departments,
        "total_proposed_basis": yuan_text(sum((Decimal(d["proposed_basis"]) for d in departments), Decimal(0))),
    }


def department_out(department: str, name: str, by_month: dict[str, dict[str, Decimal]], months: list[str],
                   waste: Decimal, findings: int) -> dict:
    catalogue = meters()
    family_totals: dict[str, Decimal] = defaultdict(Decimal)
    month_rows, monthly = [], []
    for month in months:
        by_family: dict[str, Decimal] = defaultdict(Decimal)
        for meter, amount in by_month.get(month, {}).items():
            by_family[catalogue[meter].family if meter in catalogue else "other"] += amount
        total = sum(by_family.values(), Decimal(0))
        monthly.append(total)
        for family, amount in by_family.items():
            family_totals[family] += amount
        month_rows.append({"month": month, "amount": yuan_text(total),
                           "by_family": {f: yuan_text(by_family.get(f, Decimal(0))) for f in FAMILIES}})
    basis = budget_basis(monthly, waste)
    return {
        "department_id": department, "department_name": name,
        "months": month_rows, "by_family": {f: yuan_text(family_totals.get(f, Decimal(0))) for f in FAMILIES},
        "actual_12_months": yuan_text(basis.actual), "monthly_mean": yuan_text(basis.monthly_mean),
        "trend_per_month": yuan_text(basis.trend_per_month), "projected": yuan_text(basis.projected),
        "bounded": yuan_text(basis.bounded), "annual_waste": yuan_text(basis.annual_waste),
        "proposed_basis": yuan_text(basis.proposed), "waste_findings": findings,
    }


SUMMARY = ["department_id", "department_name", "actual_12_months", "monthly_mean", "trend_per_month", "projected",
           "bounded", "annual_waste", "proposed_basis"]


def summary_table(report: dict, lang: str, as_numbers: bool) -> tuple[list[str], list[list]]:
    header = [column(c, lang) for c in SUMMARY[:2]] + [f"{family_name(f, lang)}(元)" if lang == "zh" else
                                                       f"{family_name(f, lang)} (CNY)" for f in FAMILIES]
    header += report["months"] + [column(c, lang) for c in SUMMARY[2:]]
    convert = (lambda v: Decimal(v)) if as_numbers else (lambda v: v)
    rows = []
    for d in report["departments"]:
        rows.append([d["department_id"], d["department_name"]] + [convert(d["by_family"][f]) for f in FAMILIES]
                    + [convert(m["amount"]) for m in d["months"]] + [convert(d[c]) for c in SUMMARY[2:]])
    return header, rows


@router.get("/v1/reports/budget-basis", response_model=BudgetBasisReport,
            responses={200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument"
                                                             ".spreadsheetml.sheet": {}}}})
async def get_budget_basis(principal: Finance, year: int, through: ThroughQuery, format: str = "json",
                           lang: str = "zh"):
    """Per department: trailing 12 months' spend by service family and month, trend, identified waste and the
    proposed basis for ``year``. ``format=xlsx`` gives a workbook with headers in the chosen language."""
    check_lang(lang)
    check_format(format, ("json", "csv", "xlsx"))
    if not 2000 <= year <= 9999:
        raise unprocessable("year", "a four-digit year")
    report = await budget_report(year, through or Month(year - 1, 12), lang)
    filename = f"govmeter-budget-basis-{year}"
    if format == "csv":
        header, rows = summary_table(report, lang, as_numbers=False)
        return csv_response(header, rows, filename + ".csv")
    if format == "xlsx":
        return workbook(report, lang, filename + ".xlsx")
    return report


def workbook(report: dict, lang: str, filename: str):
    """The summary, the monthly detail per family and the method, one sheet each, numbers as numbers."""
    header, rows = summary_table(report, lang, as_numbers=True)
    detail_header = [column(c, lang) for c in ("department_id", "department_name", "month", "family",
                                               "family_name", "amount")]
    detail = [[d["department_id"], d["department_name"], m["month"], f, family_name(f, lang),
               Decimal(m["by_family"][f])]
              for d in report["departments"] for m in d["months"] for f in FAMILIES]
    notes_header = ["说明" if lang == "zh" else "Notes"]
    span = f"{report['months'][0]} – {report['months'][-1]}"
    notes = [[report["formula"]], [f"{'区间' if lang == 'zh' else 'Months'}: {span}"],
             [f"{'下限/上限' if lang == 'zh' else 'Bounds'}: {FLOOR_RATIO} / {CAP_RATIO}"]]
    titles = ("预算依据", "月度明细", "计算方法") if lang == "zh" else ("Budget basis", "Monthly detail", "Method")
    return xlsx_response([(titles[0], header, rows), (titles[1], detail_header, detail),
                          (titles[2], notes_header, notes)], filename)
