"""Billing API: departments and rate cards (admin); monthly bills, periods and their close, manual adjustments,
budgets and alerts, and the ledger's verification. Every role reads within its scope: a department token sees
only its own department's bills, adjustments, budgets and alerts."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, status
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from pydantic import TypeAdapter

from schemas.api import Role
from schemas.billing import (
    AdjustmentIn,
    AdjustmentOut,
    AlertOut,
    BillOut,
    BillSummary,
    BudgetIn,
    BudgetOut,
    CloseIn,
    CloseResult,
    LedgerVerification,
    PeriodOut,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionOut,
    SourceOut,
)
from services.billing.applications import router as applications_router
from services.billing.background import run_billing_loop
from services.bill_reads.bills import closed_periods, snapshot
from services.billing.budgets import (
    evaluate_budget,
    list_alerts,
    list_budgets,
    publish_alerts,
    put_budget,
    year_spend,
)
from services.billing.closes import router as closes_router
from services.billing.closing import (
    PeriodClosed,
    PeriodNotEnded,
    UnknownDepartment,
    close_period,
    list_adjustments,
    post_adjustment,
)
from services.billing.disputes import router as disputes_router
from services.billing.documents import XLSX_TYPE, bill_pdf, bill_xlsx
from services.billing.domain.bills import parse_bill_number
from services.billing.domain.documents import BillSheet, attachment_name, bill_sheet
from services.billing.domain.render import bill_csv, draft_bytes
from services.billing import hierarchy
from services.billing.ledger import verify_ledger
from services.billing.queries import list_periods
from services.bill_reads.issued import FinalBill, bill_summaries, read_bill
from services.billing.domain.webhooks import url_refusal
from services.billing.webhooks import create_subscription, delete_subscription, list_subscriptions, run_webhook_loop
from services.billing.rate_card_approvals import router as rate_card_approvals
from services.billing.watermarks import HeldBySources, source_report
from services.common.auth import Principal, require_roles
from services.common.scope import TREE, Rollup, read_scope
from services.common.config import get_settings
from services.common.db import get_engine, raw_connection
from services.common.decimal_json import DecimalJSONRoute
from services.common.guard import guard
from services.common.health import add_health_route
from services.common.meters import add_meters_route
from services.common.metrics import observe_cache
from services.common.observability import instrument
from services.common.openapi import document_error_details
from services.common.lifespan import producer_lifespan
from services.common.http_guards import DepartmentParam, answer_statement_timeouts
from services.common.http import month_param, unprocessable
from services.common.periods import Month, month_of
from services.common.known_answers import KnownAnswers, serve_known_answers
from services.common.response_cache import USAGE_TABLES, Reads, ResponseCache, with_response_cache
from services.reference.routes import router as reference_routes


def _billing_loop(producer, settings):
    # Closes due periods, evaluates budgets and publishes alerts every billing_check_seconds; delivers webhooks
    # every webhook_poll_seconds.
    loops = []
    if settings.billing_check_seconds > 0:
        loops.append(run_billing_loop(get_engine(), settings, producer))
    if settings.webhook_poll_seconds > 0:
        loops.append(run_webhook_loop(get_engine(), settings))
    return _all(loops) if loops else None


async def _all(loops) -> None:
    await asyncio.gather(*loops)  # cancelling the task cancels each loop


# What the bill list reads (see services.bill_reads.issued.bill_summaries).
bills_cache = ResponseCache(tables=(*USAGE_TABLES, "resource_intervals", "resource_trials", "rate_cards", "departments",
                                    "billing_periods", "bills", "adjustments", "ledger_entries", "usage_baselines"))
app = FastAPI(title="govmeter billing API", version="1.0",
              lifespan=with_response_cache(producer_lifespan(_billing_loop), bills_cache))
app.router.route_class = DecimalJSONRoute  # JSON numbers in bodies (prices, amounts) parsed as Decimal
add_health_route(app)
add_meters_route(app)
instrument(app, "billing")
observe_cache("bills", bills_cache)
answer_statement_timeouts(app)
document_error_details(app)
guard(app, "billing")
known_bills = KnownAnswers(bills_cache)
serve_known_answers(app, known_bills, "/v1/bills")  # a cached bill list asked again is served before routing
app.include_router(disputes_router)  # disputes of final bill lines (Art. 13)
app.include_router(applications_router)  # resource applications (Art. 8–10)
TREE.watch(bills_cache)  # bills_cache counts changes to departments: the tree is remembered while unchanged
app.include_router(rate_card_approvals)  # rate cards: proposals, approval, rejection (maker/checker)
app.include_router(closes_router)  # GET /v1/closes (services/billing/closes.py)

Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
Finance = Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.ADMIN))]
Reader = Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.ADMIN, Role.DEPARTMENT))]
SourceReader = Annotated[Principal, Depends(require_roles(Role.PROVIDER, Role.FINANCE, Role.ADMIN))]
AnyRole = Annotated[Principal, Depends(require_roles(*Role.ALL))]
# A budget year, as PUT /v1/budgets/{department}/{year} takes it (an unbounded int overflowed the query: 500).
YearFilter = Annotated[int | None, Query(ge=2000, le=2999)]


async def billing_clock() -> datetime:
    """The current instant; a dependency so that tests can stand at any date (async: no thread pool hop)."""
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(billing_clock)]
PathMonth = Annotated[Month, Depends(month_param(in_path=True))]
BillsMonth = Annotated[Month | None, Depends(month_param(required=False, description="YYYY-MM; default: this month"))]
OptionalMonth = Annotated[Month | None, Depends(month_param(required=False))]


app.include_router(reference_routes)  # departments and rate cards


# --- periods ----------------------------------------------------------------------------------------------------


@app.get("/v1/periods", response_model=list[PeriodOut], tags=["billing"])
async def get_periods(principal: Reader, now: Now):
    """Billing periods (local calendar months): closed ones with their close, open ones with usage and when
    they close by themselves (``GOVMETER_CLOSE_GRACE_DAYS`` local days after the month ends, once no active
    event source is behind the month's end: ``held_by`` names those that are). A department sees its own bill
    count and total of each closed period, not the city's."""
    settings = get_settings()
    return await list_periods(get_engine(), settings.close_grace_days, now, settings.source_active_days,
                              (await read_scope(principal)).ids)


@app.post("/v1/periods/{month}/close", response_model=CloseResult, tags=["billing"],
          responses={409: {"description": "the month has not ended yet, or an active event source has not "
                                          "delivered data up to its end (the detail names the sources)"}})
async def close_billing_period(principal: Admin, period: PathMonth, now: Now, body: CloseIn | None = None):
    """Close a period now, before its grace ends: every department's bill becomes final (its JSON, CSV and
    content hash are stored and never change) and its amounts go to the ledger. Departments with active
    resources get a bill even at zero usage. Closing a closed period is harmless: 200 with the same result.
    While an active event source is behind the month's end (``GET /v1/sources``) the answer is 409 naming it;
    ``{"override_watermarks": true, "reason": "..."}`` closes anyway and records who, when, why and which
    sources were behind on the period."""
    month = str(period)
    body = body or CloseIn()
    if body.override_watermarks and body.reason is None:
        raise unprocessable("reason", "required with override_watermarks (it is recorded on the period)")
    try:
        outcome = await close_period(get_engine(), month, now, closed_by=principal.subject,
                                     active_days=get_settings().source_active_days,
                                     override_reason=body.reason if body.override_watermarks else None)
    except (PeriodNotEnded, HeldBySources) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return CloseResult(period=outcome.period, closed_at=outcome.closed_at, closed_by=outcome.closed_by,
                       total=outcome.total, bills=[asdict(b) for b in outcome.bills],
                       watermark_override=outcome.watermark_override)


@app.get("/v1/sources", response_model=list[SourceOut], tags=["billing"])
async def get_sources(principal: SourceReader, now: Now):
    """Each event source: the newest usage interval end stored for it (its data is complete up to there), when
    a new event of it was last stored, whether it is active (last seen less than ``GOVMETER_SOURCE_ACTIVE_DAYS``
    ago) and which ended open periods it holds: a period closes, by itself or by hand, only once no active
    source is behind its end. A provider sees its token's sources."""
    only = principal.sources if principal.role == Role.PROVIDER else None
    return await source_report(get_engine(), now, get_settings().source_active_days, only)


# --- bills ------------------------------------------------------------------------------------------------------


@app.get("/v1/bills", response_model=list[BillSummary], tags=["billing"])
async def get_bills(principal: Reader, now: Now, period: BillsMonth, department: DepartmentParam = None,
                    rollup: Rollup = False):
    """The bills of a period (finance and admin: every department; a district finance office: its subtree; a
    department: its own), or, with only ``department``, every bill of that department (``rollup``: of its
    subtree). Open periods show drafts as of now."""
    scope = await read_scope(principal, department, rollup)
    month = str(period) if period else None
    by_clock = month is None and scope.one is None
    if by_clock:
        month = month_of(now)
    # Cached per (scope, month, department). ``now`` reaches the answer only through the default month, resolved
    # above into the key: a summary shows no "as of", and a draft's total is a function of the stored rollups,
    # adjustments, cards and closes alone (it is "as of now" only in that it sees every stored row). A period
    # closing, by hand or by the background task, writes billing_periods and so invalidates the cache.
    key = ("/v1/bills", principal.role, principal.department, month, scope.ids)

    async def summaries() -> bytes:
        found = await bill_summaries(get_engine(), month, scope.ids, now)
        return _SUMMARIES.dump_json(_SUMMARIES.validate_python(found))

    if month is not None and bills_cache.connected and month in await _closed_months():
        # A closed month's list is its final bills alone, which only a close writes: ingesting keeps it.
        reads = Reads(frozenset({"bills", "billing_periods"}))
    else:
        # A bill list reads its departments' usage of every month (drafts, and the closed months their late
        # adjustments re-check): ingesting another department's usage keeps it.
        reads = Reads(bills_cache.everything.tables, usage=True,
                      departments=None if scope.ids is None else frozenset(scope.ids))
    body = await bills_cache.serve(key, summaries, reads)
    if not by_clock:  # the default month is the clock's: the same request may mean another month tomorrow
        known_bills.remember(key)
    return Response(body, media_type="application/json")


async def _closed_months() -> frozenset[str]:
    """The closed billing periods, from the cache until a close (a period once closed stays closed)."""

    async def read() -> bytes:
        async with raw_connection(get_engine()) as conn:
            return " ".join(await closed_periods(conn)).encode()

    text = await bills_cache.serve(("closed months",), read, Reads(frozenset({"billing_periods"})))
    return frozenset(text.decode().split())


_SUMMARIES = TypeAdapter(list[BillSummary])


async def _bill_owner(principal: Principal, bill_id: str) -> None:
    parsed = parse_bill_number(bill_id)
    if parsed is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="bill_id: not a bill number (GM-YYYY-MM-<department>)")
    await read_scope(principal, parsed[1])


async def _bill(principal: Principal, bill_id: str, now: datetime):
    await _bill_owner(principal, bill_id)
    found = await read_bill(get_engine(), bill_id, now)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"bill_id: no bill {bill_id}")
    return found


@app.get("/v1/bills/{bill_id}.csv", tags=["billing"], response_class=Response,
         responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 with BOM, Chinese headers"}})
async def get_bill_csv(bill_id: str, principal: Reader, now: Now):
    """The bill as CSV. A final bill's CSV is the bytes stored at close."""
    found = await _bill(principal, bill_id, now)
    body = found.csv if isinstance(found, FinalBill) else bill_csv(found)
    headers = {"Content-Disposition": f'attachment; filename="{bill_id}.csv"'}
    if isinstance(found, FinalBill):
        headers["ETag"] = f'"{found.content_hash}"'
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


async def _bill_sheet(principal: Principal, bill_id: str, now: datetime) -> BillSheet:
    """What the bill's documents show: a final bill's stored CSV (with its stored hash), or the draft's as of now."""
    found = await _bill(principal, bill_id, now)
    if isinstance(found, FinalBill):
        return bill_sheet(found.csv, issued_at=found.closed_at, content_hash=found.content_hash)
    return bill_sheet(bill_csv(found), issued_at=found.as_of)


@app.get("/v1/bills/{bill_id}/document.xlsx", tags=["billing"], response_class=Response,
         responses={200: {"content": {XLSX_TYPE: {}}, "description": "the bill as a workbook"},
                    404: {"description": "no such bill"}})
async def get_bill_xlsx(bill_id: str, principal: Reader, now: Now):
    """The bill as an XLSX workbook: the header (a final bill's content hash; a draft marked 草稿), then the
    CSV's rows with quantities and amounts as numbers. A final bill's is made from its stored CSV."""
    sheet = await _bill_sheet(principal, bill_id, now)
    body = await run_in_threadpool(bill_xlsx, sheet)
    return Response(body, media_type=XLSX_TYPE, headers={"Content-Disposition": attachment_name(bill_id, "xlsx")})


@app.get("/v1/bills/{bill_id}/document.pdf", tags=["billing"], response_class=Response,
         responses={200: {"content": {"application/pdf": {}}, "description": "the bill, printable (A4)"},
                    404: {"description": "no such bill"}})
async def get_bill_pdf(bill_id: str, principal: Reader, now: Now):
    """The bill as a printable PDF (A4 landscape, Chinese): the same header and rows as the XLSX."""
    sheet = await _bill_sheet(principal, bill_id, now)
    body = await run_in_threadpool(bill_pdf, sheet, get_settings().pdf_font)
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition": attachment_name(bill_id, "pdf")})


@app.get("/v1/bills/{bill_id}", tags=["billing"], response_class=Response,
         responses={200: {"model": BillOut}, 404: {"description": "no such bill"}})
async def get_bill(bill_id: str, principal: Reader, now: Now):
    """A bill: lines per meter (and per information system), the prices applied, adjustments, totals. A draft
    is computed from the rollups as of now; a final bill is returned exactly as issued, with its content hash
    (also in the ``ETag``)."""
    found = await _bill(principal, bill_id, now)
    if isinstance(found, FinalBill):
        return Response(found.document, media_type="application/json",
                        headers={"ETag": f'"{found.content_hash}"'})
    return Response(draft_bytes(found), media_type="application/json")


# --- adjustments ------------------------------------------------------------------------------------------------


@app.post("/v1/adjustments", status_code=status.HTTP_201_CREATED, response_model=AdjustmentOut, tags=["billing"],
          responses={409: {"description": "the period is closed"}})
async def create_adjustment(adjustment: AdjustmentIn, principal: Admin, now: Now):
    """Append a manual adjustment (negative ``amount``: a credit) to a department's bill of an open period
    (``month``, default this month). Adjustments are never changed or removed: correct one with another. Who
    posted it, when and why are kept, and it is an entry in the ledger."""
    period = adjustment.month or month_of(now)
    try:
        posted = await post_adjustment(get_engine(), adjustment.department_id, period, adjustment.amount,
                                       adjustment.reason, adjustment.reference, principal.subject)
    except UnknownDepartment as exc:
        raise unprocessable(str(exc)) from None
    except PeriodClosed as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return AdjustmentOut(**posted)


@app.get("/v1/adjustments", response_model=list[AdjustmentOut], tags=["billing"])
async def get_adjustments(principal: Reader, period: OptionalMonth, department: DepartmentParam = None,
                          rollup: Rollup = False):
    """Manual adjustments, with who posted them, when and why."""
    return await list_adjustments(get_engine(), (await read_scope(principal, department, rollup)).ids,
                                  str(period) if period else None)


# --- budgets and alerts -----------------------------------------------------------------------------------------


@app.put("/v1/budgets/{department_id}/{year}", response_model=BudgetOut, tags=["budgets"])
async def set_budget(department_id: str, year: Annotated[int, Path(ge=2000, le=2999)], budget: BudgetIn,
                     principal: Finance):
    """Set a department's budget for a year and evaluate it at once: alerts when the year's spend reaches
    50 %, 80 % and 100 % of it, and when the run rate of the latest open month projects an overrun (each alert
    once; also published to the ``<prefix>.alerts`` topic)."""
    await read_scope(principal, department_id)  # a district finance office sets its subtree's budgets only
    settings = get_settings()
    engine = get_engine()
    try:
        row = await put_budget(engine, department_id, year, budget.amount, principal.subject)
    except UnknownDepartment as exc:
        raise unprocessable(str(exc)) from None
    raised = await evaluate_budget(engine, department_id, year, settings.budget_projection_min_hours)
    if raised:
        await publish_alerts(engine, app.state.producer, settings.alerts_topic)
    async with snapshot(engine) as conn:
        spend, _ = await year_spend(conn, department_id, year)
    return BudgetOut(**row, spend=spend, alerts=[AlertOut(**a) for a in raised])


@app.get("/v1/budgets", response_model=list[BudgetOut], tags=["budgets"])
async def get_budgets(principal: Reader, year: YearFilter = None, department: DepartmentParam = None,
                      rollup: Rollup = False):
    """Budgets with the year's spend so far. ``rollup``: the budgets of the department's subtree (every visible
    one without ``department``), each with ``subtree_spend``, its own spend and that of every department below it."""
    engine = get_engine()
    scope = await read_scope(principal, department, rollup)
    rows = await list_budgets(engine, scope.ids, year)
    async with snapshot(engine) as conn:
        return [BudgetOut(**row, **spends) for row, spends in await hierarchy.budget_spends(conn, rows, scope, rollup)]


@app.get("/v1/alerts", response_model=list[AlertOut], tags=["budgets"])
async def get_alerts(principal: Reader, year: YearFilter = None, department: DepartmentParam = None,
                     rollup: Rollup = False):
    """Budget alerts (finance and admin: all; a district finance office: its subtree; a department: its own)."""
    return await list_alerts(get_engine(), (await read_scope(principal, department, rollup)).ids, year)


# --- webhook subscriptions --------------------------------------------------------------------------------------


@app.post("/v1/subscriptions", status_code=status.HTTP_201_CREATED, response_model=SubscriptionCreated,
          tags=["webhooks"])
async def subscribe(subscription: SubscriptionIn, principal: Reader):
    """Have budget alerts and/or spend warnings stored from now on POSTed to ``url``, signed with the secret in
    this answer (shown once). Scope: one department (a department token: only its own), or, for finance and admin
    without ``department_id``, every department. The URL's host must be allowed (GOVMETER_WEBHOOK_ALLOWED_HOSTS)."""
    scope = await read_scope(principal, subscription.department_id)
    if scope.ids is not None and scope.one is None:  # a district finance office: not "every department"
        raise unprocessable("department_id: required: a district finance token subscribes to one department")
    department = scope.one
    refusal = url_refusal(subscription.url, get_settings().webhook_hosts)
    if refusal is not None:
        raise unprocessable(refusal)
    try:
        created = await create_subscription(get_engine(), principal, subscription.url, subscription.events,
                                            subscription.alert_kinds, department)
    except UnknownDepartment as exc:
        raise unprocessable(str(exc)) from None
    return SubscriptionCreated(**created)


@app.get("/v1/subscriptions", response_model=list[SubscriptionOut], tags=["webhooks"])
async def get_subscriptions(principal: Reader):
    """The caller's own subscriptions (a department: its department's) with their deliveries so far; no secrets."""
    return await list_subscriptions(get_engine(), principal)


@app.delete("/v1/subscriptions/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["webhooks"],
            response_class=Response, responses={404: {"description": "the caller has no subscription by that id"}})
async def unsubscribe(subscription_id: uuid.UUID, principal: Reader):
    """Delete one of the caller's subscriptions; its pending deliveries are not sent."""
    if not await delete_subscription(get_engine(), principal, subscription_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"subscription_id: no subscription {subscription_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- ledger -----------------------------------------------------------------------------------------------------


@app.get("/v1/ledger/verify", response_model=LedgerVerification, tags=["ledger"])
async def verify(principal: Admin):
    """Check the ledger's hash chain and what it vouches for; any edited, deleted or reordered entry, and any
    final bill whose stored bytes changed, is named."""
    async with snapshot(get_engine()) as conn:
        report = await verify_ledger(conn)
    return LedgerVerification(ok=report.ok, entries=report.entries, head_seq=report.head_seq,
                              head_hash=report.head_hash,
                              problems=[{"seq": p.seq, "problem": p.problem} for p in report.problems])
