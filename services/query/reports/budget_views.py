"""The budget basis's months as billed, broken down by service family or by information system (Art. 19).

Per department and month: the bill's total (``amount``), its lines by family (always) and by information system
(``by=system``), and the adjustments it carries, which name no system: late adjustments for closed months and
manual adjustments (dispute credits included). The groups plus the two adjustments add up to the month."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from services.billing.domain.billed import BilledMonth, by_group
from schemas.money import yuan_text
from services.query.reports.labels import column, family_name, pick

VIEWS = ("family", "system")
FAMILIES = ("compute", "storage", "network", "bandwidth", "security")
ADJUSTMENTS = {"late_adjustments": ("迟到调整(元)", "Late adjustments (CNY)"),
               "manual_adjustments": ("手工调整及争议退款(元)", "Manual adjustments and dispute credits (CNY)")}
ZERO = Decimal(0)


def department_months(billed: dict[str, BilledMonth], months: list[str], view: str,
                      family_of: dict[str, str]) -> tuple[list[dict], dict, list[Decimal]]:
    """The month rows of one department, its 12-month totals (by family, by system, adjustments) and its
    monthly totals (the trend's input)."""
    rows, monthly = [], []
    totals: dict[str, dict[str, Decimal]] = {"family": defaultdict(Decimal), "system": defaultdict(Decimal)}
    late = manual = ZERO
    for month in months:
        bill = billed.get(month, BilledMonth())
        families = by_group(bill, "family", family_of)
        row = {"month": month, "amount": yuan_text(bill.total),
               "by_family": {f: yuan_text(families.get(f, ZERO)) for f in FAMILIES},
               "late_adjustments": yuan_text(bill.late_adjustments),
               "manual_adjustments": yuan_text(bill.manual_adjustments)}
        for family, amount in families.items():
            totals["family"][family] += amount
        if view == "system":
            row["by_system"] = {s: yuan_text(a) for s, a in sorted(bill.by_system.items())}
            for system, amount in bill.by_system.items():
                totals["system"][system] += amount
        late += bill.late_adjustments
        manual += bill.manual_adjustments
        monthly.append(bill.total)
        rows.append(row)
    summary = {"by_family": {f: yuan_text(totals["family"].get(f, ZERO)) for f in FAMILIES},
               "late_adjustments": yuan_text(late), "manual_adjustments": yuan_text(manual)}
    if view == "system":
        summary["by_system"] = {s: yuan_text(a) for s, a in sorted(totals["system"].items())}
    return rows, summary, monthly


def group_columns(view: str, lang: str) -> list[str]:
    """The summary sheet's group columns: one per family (the family view), then the two adjustments."""
    families = [f"{family_name(f, lang)}(元)" if lang == "zh" else f"{family_name(f, lang)} (CNY)" for f in FAMILIES]
    return (families if view == "family" else []) + [pick(ADJUSTMENTS[k], lang) for k in ADJUSTMENTS]


def group_values(department: dict, view: str) -> list[str]:
    return ([department["by_family"][f] for f in FAMILIES] if view == "family" else []) + [
        department[k] for k in ADJUSTMENTS]


def detail_rows(report: dict, view: str, lang: str) -> tuple[list[str], list[list]]:
    """The monthly detail sheet: per department, month and family (or information system) its amount, then the
    month's adjustments, so a month's rows add up to its amount."""
    key = "family" if view == "family" else "system"
    header = [column(c, lang) for c in ("department_id", "department_name", "month", key)]
    header += [column("family_name", lang)] if view == "family" else []
    header.append(column("amount", lang))
    rows = []
    for d in report["departments"]:
        for m in d["months"]:
            prefix = [d["department_id"], d["department_name"], m["month"]]
            groups = m["by_family"] if view == "family" else m["by_system"]
            for group, amount in groups.items():
                named = [group, family_name(group, lang)] if view == "family" else [group]
                rows.append(prefix + named + [Decimal(amount)])
            for k in ADJUSTMENTS:
                label = pick(ADJUSTMENTS[k], lang)
                rows.append(prefix + ([k, label] if view == "family" else [label]) + [Decimal(m[k])])
    return header, rows


def system_totals(report: dict, lang: str) -> tuple[list[str], list[list]]:
    """The by-system sheet: each department's information systems with their 12-month spend."""
    header = [column(c, lang) for c in ("department_id", "department_name", "system", "amount")]
    rows = [[d["department_id"], d["department_name"], system, Decimal(amount)]
            for d in report["departments"] for system, amount in d["by_system"].items()]
    return header, rows
