"""One bill (final as stored, or a draft computed now) and bill lists: what the billing API serves and the query
service's reports reconcile with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.bill_reads.bills import (
    closed_periods,
    departments_to_bill,
    has_presence,
    open_periods_with_usage,
    period_bills,
    reference,
    snapshot,
)
from services.bill_reads.memo import SnapshotMemo
from services.billing.domain.bills import Bill, parse_bill_number
from services.billing.domain.periods import open_periods_after_closed


@dataclass(frozen=True, slots=True)
class FinalBill:
    document: bytes
    csv: bytes
    content_hash: str
    closed_at: datetime | None = None


async def read_bill(engine: AsyncEngine, bill_id: str, now: datetime) -> FinalBill | Bill | None:
    """A final bill exactly as issued, else the draft as of now; None if there is no such bill."""
    parsed = parse_bill_number(bill_id)
    if parsed is None:
        return None
    period, department = parsed
    async with snapshot(engine) as conn:
        row = await conn.fetchrow("SELECT document, csv, content_hash, closed_at FROM bills WHERE bill_id = $1",
                                  bill_id)
        if row is not None:
            return FinalBill(bytes(row["document"]), bytes(row["csv"]), row["content_hash"], row["closed_at"])
        if period in await closed_periods(conn):
            return None  # closed without a bill for this department
        (bill,) = (await period_bills(conn, period, status="draft", as_of=now, departments=[department],
                                      versioned=True)).bills
        if bill.is_empty and not await has_presence(conn, department, period):
            return None
        return bill


def _final_summary(row) -> dict:
    # the name as issued: generated from the stored document (migration 0017), so the document is not read
    return {"bill_id": row["bill_id"], "department_id": row["department_id"],
            "department_name": row["department_name"], "period": row["period"], "status": "final",
            "total": row["total"], "content_hash": row["content_hash"], "closed_at": row["closed_at"]}


def _draft_summary(bill: Bill) -> dict:
    return {"bill_id": bill.bill_id, "department_id": bill.department_id, "department_name": bill.department_name,
            "period": bill.period, "status": "draft", "total": bill.total, "content_hash": None, "closed_at": None}


# A scope's final bills, by (period, departments, closes): only a close writes bills.
_FINALS = SnapshotMemo(1024)


async def _final_summaries(conn, period: str | None, departments: list[str] | None) -> list[dict]:
    rows = await conn.fetch(
        """
        SELECT bill_id, department_id, department_name, period, total, content_hash, closed_at FROM bills
        WHERE ($1::text IS NULL OR period = $1) AND ($2::text[] IS NULL OR department_id = ANY($2::text[]))
        ORDER BY period, department_id
        """,
        period, departments,
    )
    return [_final_summary(r) for r in rows]


async def bill_summaries(engine: AsyncEngine, period: str | None, departments: Sequence[str] | None,
                         now: datetime) -> list[dict]:
    """Bills of a period (every department, or those of a scope), or every bill of a scope's departments.
    Closes, rate cards and names are read once for every open period listed; closed months' usage fingerprints
    only where their usage version moved (``bills.pending_late_adjustments``); what only appends decide is
    remembered by its stamp (``services.bill_reads.memo``)."""
    async with snapshot(engine) as conn:
        known = await reference(conn)
        closed, stamp = known.closed, known.stamp
        scope = None if departments is None else list(departments)
        key = (stamp.where, stamp.closes, period, None if scope is None else tuple(scope))
        # a copy: the drafts are added to it
        summaries = list(await _FINALS.read_through(key, lambda: _final_summaries(conn, period, scope)))
        if period is not None:
            drafts = [] if period in closed else [period]
        else:
            assert scope is not None
            drafts = open_periods_after_closed(closed)
            for department in scope:  # one department at a time: its loose index scan
                drafts |= set(await open_periods_with_usage(conn, department, closed))
        for open_period in sorted(drafts):
            bills = (await period_bills(conn, open_period, status="draft", as_of=now, versioned=True, known=known,
                                        departments=scope, totals_only=True)).bills
            if scope is not None and any(b.is_empty for b in bills):
                # a department's zero bill is listed only if the period bills it (active resources)
                billed = await departments_to_bill(conn, open_period, scope)
                bills = [b for b in bills if not b.is_empty or b.department_id in billed]
            summaries += [_draft_summary(b) for b in bills]
    return sorted(summaries, key=lambda s: (s["period"], s["department_id"]))

