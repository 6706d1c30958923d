"""Disputes of final bill lines (Art. 13): the billing API's routes and their PostgreSQL side.

A department disputes a line of its own final bill; finance or admin answers once, rejecting it with a reply or
upholding it with an amount. An upheld dispute becomes an ordinary adjustment (a credit, reference
``dispute:<id>``) on the department's next open bill, with its ledger entry, in the transaction that records the
answer, under BILLING_LOCK like every adjustment: closed bills never change, the next close freezes the credit into
that bill and its ledger entries, and replay recomputes it from the adjustments table like any other adjustment.

Article 18: a department lists and reads only its own disputes; another department's is a 404 (nothing about it
is told), a filter naming another department a 403, as on every other read."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.api import Role
from schemas.disputes import DisputeIn, DisputeOut, DisputeStatus, RejectIn, UpholdIn
from services.bill_reads.bills import closed_periods
from services.common.locks import lock_billing
from services.billing.closing import insert_adjustment
from services.billing.domain.bills import parse_bill_number
from services.billing.domain.disputes import (
    OPEN,
    REJECTED,
    UPHELD,
    DisputeRefused,
    check_answer,
    check_credit,
    credit_period,
    credit_reason,
    credit_reference,
    line_of,
)
from services.common.auth import Principal, require_roles, scoped_department
from services.common.scope import may_see, require_city_wide
from services.common.db import get_engine, raw_connection, raw_transaction
from services.common.decimal_json import DecimalJSONRoute
from services.common.http_guards import DepartmentParam

router = APIRouter(route_class=DecimalJSONRoute, tags=["disputes"])  # amounts parsed as Decimal from their text
Department = Annotated[Principal, Depends(require_roles(Role.DEPARTMENT))]
# Answers credit bills city-wide: the city finance bureau or admin, not a district finance office.
Answerer = Annotated[Principal, Depends(require_city_wide(Role.FINANCE, Role.ADMIN))]
Reader = Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.ADMIN, Role.DEPARTMENT))]
DisputeId = Annotated[int, Path(ge=1, le=2**63 - 1)]

_SELECT = """
    SELECT d.id, d.department_id, d.bill_id, d.period, d.meter, d.line_quantity, d.line_amount, d.reason, d.status,
           d.opened_by, d.opened_at, d.answered_by, d.answered_at, d.reply, d.credit, d.credit_period,
           d.adjustment_id, a.ledger_seq
    FROM disputes d LEFT JOIN adjustments a ON a.id = d.adjustment_id
"""


def _refused(exc: DisputeRefused) -> HTTPException:
    return HTTPException(exc.status, detail=str(exc))


# --- PostgreSQL -------------------------------------------------------------------------------------------------


async def read_disputes(conn, department: str | None, state: str | None = None, bill_id: str | None = None,
                        dispute_id: int | None = None) -> list[dict]:
    rows = await conn.fetch(
        _SELECT + """
        WHERE ($1::text IS NULL OR d.department_id = $1) AND ($2::text IS NULL OR d.status = $2)
          AND ($3::text IS NULL OR d.bill_id = $3) AND ($4::bigint IS NULL OR d.id = $4)
        ORDER BY d.id
        """,
        department, state, bill_id, dispute_id,
    )
    return [dict(r) for r in rows]


async def _final_bill_document(conn, bill_id: str, period: str) -> bytes:
    document = await conn.fetchval("SELECT document FROM bills WHERE bill_id = $1", bill_id)
    if document is not None:
        return bytes(document)
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM billing_periods WHERE period = $1)", period):
        raise DisputeRefused(404, f"bill_id: no final bill {bill_id}")
    raise DisputeRefused(409, f"bill_id: {bill_id} is a draft (period {period} is open); only a final bill can be "
                              "disputed")


async def open_dispute(engine: AsyncEngine, principal: Principal, body: DisputeIn) -> dict:
    """Record a dispute of a line of the caller's own final bill; refused (DisputeRefused) otherwise, and while
    another dispute of the same line is open (the database's unique index decides between concurrent ones)."""
    parsed = parse_bill_number(body.bill_id)
    if parsed is None:
        raise DisputeRefused(422, "bill_id: not a bill number (GM-YYYY-MM-<department>)")
    period, department = parsed
    if department != principal.department:
        raise DisputeRefused(403, "bill_id: a department may dispute only its own department's bills")
    async with raw_transaction(engine) as conn:
        line = line_of(await _final_bill_document(conn, body.bill_id, period), body.bill_id, body.meter)
        try:
            async with conn.transaction():  # a savepoint, so a second open dispute leaves a clean 409
                dispute_id = await conn.fetchval(
                    """
                    INSERT INTO disputes (department_id, bill_id, period, meter, line_quantity, line_amount, reason,
                                          status, opened_by, opened_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id
                    """,
                    department, body.bill_id, period, line.meter, line.quantity, line.amount, body.reason, OPEN,
                    principal.subject, datetime.now(UTC),
                )
        except asyncpg.UniqueViolationError:
            other = await conn.fetchval("SELECT id FROM disputes WHERE bill_id = $1 AND meter = $2 AND status = $3",
                                        body.bill_id, body.meter, OPEN)
            raise DisputeRefused(409, f"meter: dispute {other} of this line of {body.bill_id} is still open") from None
        (found,) = await read_disputes(conn, None, dispute_id=dispute_id)
    return found


async def answer_dispute(engine: AsyncEngine, dispute_id: int, by: str, decision: str, reply: str | None,
                         amount: Decimal | None = None) -> dict:
    """Reject or uphold an open dispute, once. Upholding credits ``amount`` on the department's next open bill: an
    adjustment and its ledger entry, under BILLING_LOCK (taken first, as closes take it) so that the period it
    lands on cannot close meanwhile."""
    answered_at = datetime.now(UTC)
    async with raw_transaction(engine) as conn:
        if decision == UPHELD:
            await lock_billing(conn)
        row = await conn.fetchrow("SELECT * FROM disputes WHERE id = $1 FOR UPDATE", dispute_id)
        if row is None:
            raise DisputeRefused(404, f"dispute_id: no dispute {dispute_id}")
        check_answer(dispute_id, row["status"], row["answered_by"], row["answered_at"])
        credit = target = adjustment_id = None
        if decision == UPHELD:
            before = [r["credit"] for r in await conn.fetch(
                "SELECT credit FROM disputes WHERE bill_id = $1 AND meter = $2 AND status = $3",
                row["bill_id"], row["meter"], UPHELD)]
            credit = check_credit(amount, row["line_amount"], before)
            closed = set(await closed_periods(conn))
            target = credit_period(row["period"], closed)
            posted = await insert_adjustment(conn, row["department_id"], target, -credit,
                                             credit_reason(dispute_id, row["bill_id"], row["meter"]),
                                             credit_reference(dispute_id), by, answered_at)
            adjustment_id = posted["id"]
        await conn.execute(
            """
            UPDATE disputes SET status = $2, answered_by = $3, answered_at = $4, reply = $5, credit = $6,
                                credit_period = $7, adjustment_id = $8
            WHERE id = $1
            """,
            dispute_id, decision, by, answered_at, reply, credit, target, adjustment_id,
        )
        (found,) = await read_disputes(conn, None, dispute_id=dispute_id)
    return found


# --- routes -----------------------------------------------------------------------------------------------------

_NOT_FOUND = {404: {"description": "no such dispute (or another department's)"}}


@router.post("/v1/disputes", status_code=status.HTTP_201_CREATED, response_model=DisputeOut,
             responses={403: {"description": "not a department token, or another department's bill"},
                        404: {"description": "the bill's period is closed and it has no final bill"},
                        409: {"description": "the bill is a draft, or a dispute of the line is still open"}})
async def create_dispute(body: DisputeIn, principal: Department):
    """Dispute a line (``meter``) of the caller's own final bill, with a reason. It stays open until finance or
    admin rejects or upholds it; one open dispute per line."""
    try:
        return await open_dispute(get_engine(), principal, body)
    except DisputeRefused as exc:
        raise _refused(exc) from None


@router.get("/v1/disputes", response_model=list[DisputeOut])
async def get_disputes(principal: Reader, department: DepartmentParam = None,
                       state: Annotated[DisputeStatus | None, Query(alias="status")] = None,
                       bill_id: Annotated[str | None, Query(min_length=1, max_length=100,
                                                            pattern=r"^[A-Za-z0-9_.-]+$")] = None):
    """Disputes, oldest first (finance and admin: every department's; a department: its own)."""
    async with raw_connection(get_engine()) as conn:
        return await read_disputes(conn, scoped_department(principal, department), state, bill_id)


@router.get("/v1/disputes/{dispute_id}", response_model=DisputeOut, responses=_NOT_FOUND)
async def get_dispute(dispute_id: DisputeId, principal: Reader):
    """One dispute with each step: opened (who, when, why), answered (who, when, the reply, the credit)."""
    only = principal.department if principal.role == Role.DEPARTMENT else None
    async with raw_connection(get_engine()) as conn:
        found = await read_disputes(conn, only, dispute_id=dispute_id)
    if found and not await may_see(principal, found[0]["department_id"]):
        found = []  # a district finance office: another district's dispute is as if it did not exist
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"dispute_id: no dispute {dispute_id}")
    return found[0]


_ANSWERED = {**_NOT_FOUND, 409: {"description": "the dispute is already answered"}}


@router.post("/v1/disputes/{dispute_id}/reject", response_model=DisputeOut, responses=_ANSWERED)
async def reject_dispute(dispute_id: DisputeId, body: RejectIn, principal: Answerer):
    """Reject an open dispute with a reply (finance, admin). Final: the bill is unchanged."""
    try:
        return await answer_dispute(get_engine(), dispute_id, principal.subject, REJECTED, body.reply)
    except DisputeRefused as exc:
        raise _refused(exc) from None


@router.post("/v1/disputes/{dispute_id}/uphold", response_model=DisputeOut, responses=_ANSWERED)
async def uphold_dispute(dispute_id: DisputeId, body: UpholdIn, principal: Answerer):
    """Uphold an open dispute (finance, admin): ``amount`` (more than 0, at most the line's amount less earlier
    upheld credits of the line) is credited on the department's next open bill as an adjustment naming the
    dispute, with its ledger entry. Final."""
    try:
        return await answer_dispute(get_engine(), dispute_id, principal.subject, UPHELD, body.reply, body.amount)
    except DisputeRefused as exc:
        raise _refused(exc) from None
