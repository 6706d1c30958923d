"""``GET /v1/reports/waste``: idle resources, oversized VMs, unattached volumes and public IPs (Art. 10, 19),
each with its evidence and its monthly saving in yuan at current prices. The rules are in ``waste_rules``.

Evidence is taken over the days before ``as_of`` (a local date, default today): a resource must have been held
by one department throughout the rule's window, and utilisation-based rules need observations covering at least
``MIN_OBSERVED_SHARE`` of it. A resource found idle is not also listed as oversized: releasing it saves more."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from schemas.api import Role
from schemas.reports import WasteReport
from services.common.auth import Principal, require_roles
from services.common.db import get_engine, raw_connection
from schemas.money import quantity_text, yuan_text
from services.common.http_guards import DepartmentParam
from services.common.periods import LOCAL_TZ, local_midnight
from services.common.scope import Rollup, read_scope
from services.reference.rate_cards import load_rate_cards
from services.query.reports.common import (
    TENTH,
    UtilizationFigures,
    check_format,
    csv_response,
    current_prices,
    department_names,
    parse_day,
    percent_text,
    utilization_figures,
)
from services.query.reports.labels import check_lang, column, finding_name
from services.query.reports.waste_rules import (
    IDLE,
    OVERSIZED,
    UNATTACHED_IP,
    UNATTACHED_VOLUME,
    Size,
    WastePolicy,
    is_attached,
    is_idle,
    monthly_cost,
    resize_saving,
    suggest_size,
)

router = APIRouter(tags=["reports"])
Reader = Annotated[Principal, Depends(require_roles(*Role.ALL))]
POLICY = WastePolicy()
MIN_OBSERVED_SHARE = Decimal("0.8")
EGRESS = "network.egress"


def held_throughout(intervals: list, start: datetime, end: datetime) -> list | None:
    """The intervals that cover [start, end) without a gap and under one department, else None."""
    covering = sorted((i for i in intervals
                       if i["valid_from"] < end and (i["valid_to"] is None or i["valid_to"] > start)),
                      key=lambda i: i["valid_from"])
    if not covering or covering[0]["valid_from"] > start:
        return None
    cursor = covering[0]["valid_from"]
    for interval in covering:
        if interval["valid_from"] > cursor or interval["department_id"] != covering[0]["department_id"]:
            return None
        cursor = interval["valid_to"] or end
    return covering if cursor >= end else None


def _observed_enough(figures: UtilizationFigures | None, start: datetime, end: datetime) -> bool:
    window_ms = Decimal((end - start).total_seconds() * 1000)
    return figures is not None and figures.observed_ms >= MIN_OBSERVED_SHARE * window_ms


def _money_map(values: dict[str, Decimal]) -> dict[str, str]:
    return {k: format(v, "f") for k, v in sorted(values.items())}


async def waste_findings(as_of: date, departments: Sequence[str] | None, lang: str = "zh",
                         policy: WastePolicy = POLICY) -> tuple[list[dict], dict[str, Decimal]]:
    """The findings, and the exact monthly saving per resource (the one figure the budget basis counts)."""
    end = local_midnight(as_of)
    windows = {
        IDLE: end - timedelta(days=policy.idle_days),
        OVERSIZED: end - timedelta(days=policy.oversize_days),
        "unattached": end - timedelta(days=policy.unattached_days),
    }
    earliest = min(windows.values())
    async with raw_connection(get_engine()) as conn:
        cards = await load_rate_cards(conn)
        prices = current_prices(cards, end)
        interval_rows = await conn.fetch(
            """
            SELECT resource_id, valid_from, valid_to, department_id, system, kind, spec FROM resource_intervals
            WHERE valid_from < $2 AND (valid_to IS NULL OR valid_to > $1)
              AND resource_id IN (SELECT resource_id FROM resource_intervals
                                  WHERE valid_from < $2 AND (valid_to IS NULL OR valid_to >= $2)
                                    AND ($3::text[] IS NULL OR department_id = ANY($3::text[])))
            """,
            earliest, end, departments,
        )
        ids = sorted({r["resource_id"] for r in interval_rows})
        usage = await conn.fetch(
            """
            SELECT resource_id, meter, sum(quantity) AS quantity, sum(amount) AS amount
            FROM usage_hourly WHERE resource_id = ANY($1::text[]) AND hour >= $2 AND hour < $3
            GROUP BY 1, 2
            """,
            ids, min(windows[IDLE], windows["unattached"]), end,
        ) if ids else []
        week = {k[1]: v for k, v in
                (await utilization_figures(conn, windows[IDLE], end, "resource", departments)).items()}
        fortnight = {k[1]: v for k, v in
                     (await utilization_figures(conn, windows[OVERSIZED], end, "resource", departments)).items()}
        intervals: dict[str, list] = defaultdict(list)
        for r in interval_rows:
            intervals[r["resource_id"]].append(r)
        names = await department_names(conn, {r["department_id"] for r in interval_rows})
    # Quantities and amounts over the short window (idle and unattached share its length by default; when they
    # differ, the longer one is used for both: it is the evidence gathered).
    short_start = min(windows[IDLE], windows["unattached"])
    short_hours = int((end - short_start).total_seconds() // 3600)
    quantities: dict[str, dict[str, Decimal]] = defaultdict(dict)
    billed: dict[str, Decimal] = defaultdict(Decimal)
    for r in usage:
        per_meter = quantities[r["resource_id"]]
        per_meter[r["meter"]] = per_meter.get(r["meter"], Decimal(0)) + r["quantity"]
        billed[r["resource_id"]] += r["amount"]
    window_text = {name: {"from": start.astimezone(LOCAL_TZ).date().isoformat(), "to": as_of.isoformat()}
                   for name, start in windows.items()}
    findings: list[dict] = []
    savings: dict[str, Decimal] = {}

    def add(kind: str, held: list, saving: Decimal, evidence: dict[str, Any], suggestion=None) -> None:
        last = held[-1]
        findings.append({
            "kind": kind, "kind_name": finding_name(kind, lang), "department_id": last["department_id"],
            "department_name": names.get(last["department_id"], last["department_id"]), "system": last["system"],
            "resource_id": last["resource_id"], "resource_kind": last["kind"], "monthly_saving": yuan_text(saving),
            "evidence": evidence, "suggestion": suggestion,
        })
        savings[last["resource_id"]] = max(savings.get(last["resource_id"], Decimal(0)), saving)

    for resource_id in ids:
        rows = intervals[resource_id]
        kind = rows[-1]["kind"]
        short = held_throughout(rows, short_start, end)
        cost = monthly_cost(quantities.get(resource_id, {}), short_hours, prices, policy)
        evidence_base = {"billed_amount": yuan_text(billed.get(resource_id, Decimal(0))),
                         "quantities": _money_map(quantities.get(resource_id, {})),
                         "prices": _money_map({m: prices[m] for m in quantities.get(resource_id, {}) if m in prices})}
        figures = week.get(resource_id)
        if short and billed.get(resource_id, Decimal(0)) > 0 and _observed_enough(figures, windows[IDLE], end):
            egress = quantities.get(resource_id, {}).get(EGRESS, Decimal(0))
            if is_idle(figures.cpu_max, egress, policy):
                add(IDLE, short, cost, {"window": window_text[IDLE], "cpu_max": percent_text(figures.cpu_max),
                                        "cpu_average": percent_text(figures.cpu_average),
                                        "egress": quantity_text(egress), "monthly_cost": yuan_text(cost),
                                        **evidence_base})
                continue
        if kind in ("volume", "ip") and short and billed.get(resource_id, Decimal(0)) > 0 \
                and not any(is_attached(i["spec"] or {}) for i in short):
            add(UNATTACHED_VOLUME if kind == "volume" else UNATTACHED_IP, short, cost,
                {"window": window_text["unattached"], "attached_to": None, "spec": short[-1]["spec"],
                 "monthly_cost": yuan_text(cost), **evidence_base})
            continue
        if kind == "vm":
            long = held_throughout(rows, windows[OVERSIZED], end)
            figures = fortnight.get(resource_id)
            if not long or not _observed_enough(figures, windows[OVERSIZED], end):
                continue
            sizes = {(i["spec"] or {}).get("vcpu") for i in long}
            memories = {(i["spec"] or {}).get("memory_gib") for i in long}
            vcpu, memory = next(iter(sizes)), next(iter(memories))
            if len(sizes) != 1 or len(memories) != 1 or not isinstance(vcpu, int) or isinstance(vcpu, bool):
                continue  # resized in the window, or no vCPU count: not enough evidence at the current size
            current = Size(vcpu, memory if isinstance(memory, int) and not isinstance(memory, bool) else None)
            cpu_p95, memory_p95 = figures.cpu_p95, figures.memory_p95
            suggested = suggest_size(current, cpu_p95, memory_p95, policy)
            if suggested is None:
                continue
            saving = resize_saving(current, suggested, prices, policy)
            add(OVERSIZED, long, saving,
                {"window": window_text[OVERSIZED], "cpu_p95": percent_text(cpu_p95, TENTH),
                 "cpu_average": percent_text(figures.cpu_average), "memory_p95": percent_text(memory_p95, TENTH),
                 "threshold_cpu_p95": format(policy.oversize_cpu_p95, "f"),
                 "current": asdict(current),
                 "prices": _money_map({m: prices[m] for m in ("compute.vcpu", "compute.memory") if m in prices})},
                suggestion=asdict(suggested))
    findings.sort(key=lambda f: (f["department_id"], f["kind"], f["resource_id"]))
    return findings, savings


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
