"""``GET /v1/reports/waste``: idle resources, oversized VMs, unattached volumes and public IPs (Art. 10, 19),
each with its evidence and its monthly saving in yuan at current prices. The rules are in
``services.query.domain.waste_rules`` and ``waste``; evidence is taken over the days before ``as_of`` (a local
date, default today)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from schemas.api import Role
from schemas.reports import WasteReport
from services.common.auth import Principal, require_roles
from schemas.money import quantity_text, yuan_text
from services.common.http_guards import DepartmentParam
from services.common.periods import LOCAL_TZ, local_midnight
from services.common.scope import Rollup, read_scope
from services.query.domain.labels import column, finding_name
from services.query.domain.waste import MIN_OBSERVED_SHARE, ResourceEvidence, Verdict, Windows, judge_resource
from services.query.domain.waste_rules import IDLE, OVERSIZED, WastePolicy
from services.query.formats import TENTH, check_format, check_lang, csv_response, parse_day, percent_text
from services.query.views import WasteReads, waste_reads

router = APIRouter(tags=["reports"])
Reader = Annotated[Principal, Depends(require_roles(*Role.ALL))]
POLICY = WastePolicy()


def _money_map(values: dict[str, Decimal]) -> dict[str, str]:
    return {k: format(v, "f") for k, v in sorted(values.items())}


async def waste_findings(as_of: date, departments: Sequence[str] | None, lang: str = "zh",
                         policy: WastePolicy = POLICY) -> tuple[list[dict], dict[str, Decimal]]:
    """The findings, and the exact monthly saving per resource (the one figure the budget basis counts)."""
    windows = Windows.before(local_midnight(as_of), policy)
    reads = await waste_reads(windows, departments)
    window_text = {name: {"from": start.astimezone(LOCAL_TZ).date().isoformat(), "to": as_of.isoformat()}
                   for name, start in ((IDLE, windows.idle), (OVERSIZED, windows.oversized),
                                       ("unattached", windows.unattached))}
    findings: list[dict] = []
    savings: dict[str, Decimal] = {}
    for resource_id, evidence in reads.evidence.items():
        verdict = judge_resource(evidence, windows, reads.prices, policy)
        if verdict is None:
            continue
        findings.append(finding_out(verdict, evidence, reads, window_text, lang, policy))
        savings[resource_id] = max(savings.get(resource_id, Decimal(0)), verdict.saving)
    findings.sort(key=lambda f: (f["department_id"], f["kind"], f["resource_id"]))
    return findings, savings


def finding_out(verdict: Verdict, evidence: ResourceEvidence, reads: WasteReads, window_text: dict, lang: str,
                policy: WastePolicy) -> dict:
    last = verdict.held[-1]
    return {
        "kind": verdict.kind, "kind_name": finding_name(verdict.kind, lang), "department_id": last["department_id"],
        "department_name": reads.names.get(last["department_id"], last["department_id"]), "system": last["system"],
        "resource_id": last["resource_id"], "resource_kind": last["kind"], "monthly_saving": yuan_text(verdict.saving),
        "evidence": evidence_out(verdict, evidence, reads.prices, window_text, policy),
        "suggestion": asdict(verdict.suggested) if verdict.suggested else None,
    }


def evidence_out(verdict: Verdict, evidence: ResourceEvidence, prices: dict[str, Decimal], window_text: dict,
                 policy: WastePolicy) -> dict[str, Any]:
    figures = verdict.figures
    if verdict.kind == OVERSIZED:
        return {"window": window_text[OVERSIZED], "cpu_p95": percent_text(figures.cpu_p95, TENTH),
                "cpu_average": percent_text(figures.cpu_average),
                "memory_p95": percent_text(figures.memory_p95, TENTH),
                "threshold_cpu_p95": format(policy.oversize_cpu_p95, "f"), "current": asdict(verdict.current),
                "prices": _money_map({m: prices[m] for m in ("compute.vcpu", "compute.memory") if m in prices})}
    base = {"billed_amount": yuan_text(evidence.billed), "quantities": _money_map(dict(evidence.quantities)),
            "prices": _money_map({m: prices[m] for m in evidence.quantities if m in prices})}
    if verdict.kind == IDLE:
        return {"window": window_text[IDLE], "cpu_max": percent_text(figures.cpu_max),
                "cpu_average": percent_text(figures.cpu_average), "egress": quantity_text(verdict.egress),
                "monthly_cost": yuan_text(verdict.cost), **base}
    return {"window": window_text["unattached"], "attached_to": None, "spec": verdict.held[-1]["spec"],
            "monthly_cost": yuan_text(verdict.cost), **base}


CSV_COLUMNS = ["department_id", "department_name", "system", "resource_id", "kind", "kind_name", "monthly_saving"]


@router.get("/v1/reports/waste", response_model=WasteReport, responses={200: {"content": {"text/csv": {}}}})
async def get_waste_report(principal: Reader, as_of: str | None = None, department: DepartmentParam = None,
                           format: str = "json", lang: str = "zh", rollup: Rollup = False):
    """Waste findings with evidence and monthly savings (yuan, at the prices in force at ``as_of``). Every role
    may read; a department token sees its own department's findings only."""
    check_lang(lang)
    check_format(format)
    day = parse_day("as_of", as_of) if as_of else datetime.now(LOCAL_TZ).date()
    findings, savings = await waste_findings(day, (await read_scope(principal, department, rollup)).ids, lang)
    if format == "csv":
        return csv_response([column(c, lang) for c in CSV_COLUMNS],
                            ([f[c] for c in CSV_COLUMNS] for f in findings), f"govmeter-waste-{day}.csv")
    policy = {k: format_value(v) for k, v in asdict(POLICY).items()}
    policy["min_observed_share"] = format_value(MIN_OBSERVED_SHARE)
    return {"as_of": day.isoformat(), "currency": "CNY", "lang": lang, "policy": policy,
            "total_monthly_saving": yuan_text(sum(savings.values(), Decimal(0))), "findings": findings}


def format_value(value) -> str | int:
    return format(value, "f") if isinstance(value, Decimal) else value
