"""What the billing API reads: one bill (final as stored, or a draft computed now), bill lists, periods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from services.billing.bills import (
    closed_periods,
    departments_to_bill,
    has_presence,
    open_periods,
    open_periods_with_usage,
    period_bills,
    snapshot,
    usage_digests,
)
from services.billing.domain.bills import Bill, parse_bill_number
from services.billing.domain.periods import closes_at, has_ended, next_open_period
from services.billing.domain.watermarks import sources_behind
from services.billing.watermarks import load_marks


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
        (bill,) = (await period_bills(conn, period, status="draft", as_of=now, departments=[department])).bills
        if bill.is_empty and not await has_presence(conn, department, period):
            return None
        return bill


def _final_summary(row) -> dict:
    document = orjson.loads(bytes(row["document"]))
    return {"bill_id": row["bill_id"], "department_id": row["department_id"],
            "department_name": document["department_name"], "period": row["period"], "status": "final",
            "total": row["total"], "content_hash": row["content_hash"], "closed_at": row["closed_at"]}


def _draft_summary(bill: Bill) -> dict:
    return {"bill_id": bill.bill_id, "department_id": bill.department_id, "department_name": bill.department_name,
            "period": bill.period, "status": "draft", "total": bill.total, "content_hash": None, "closed_at": None}


async def bill_summaries(engine: AsyncEngine, period: str | None, departments: Sequence[str] | None,
                         now: datetime, digests=usage_digests) -> list[dict]:
    """Bills of a period (every department, or those of a scope), or every bill of a scope's departments.
    ``digests``: see ``period_bills``."""
    async with snapshot(engine) as conn:
        closed = await closed_periods(conn)
        finals = await conn.fetch(
            """
            SELECT bill_id, department_id, period, total, content_hash, closed_at, document FROM bills
            WHERE ($1::text IS NULL OR period = $1) AND ($2::text[] IS NULL OR department_id = ANY($2::text[]))
            ORDER BY period, department_id
            """,
            period, departments,
        )
        summaries = [_final_summary(r) for r in finals]
        if period is not None:
            drafts = [] if period in closed else [period]
        else:
            assert departments is not None
            drafts = {next_open_period(p, closed) for p in closed}
            for department in departments:  # one department at a time: its loose index scan
                drafts |= set(await open_periods_with_usage(conn, department))
        for open_period in sorted(drafts):
            bills = (await period_bills(conn, open_period, status="draft", as_of=now, digests=digests,
                                        departments=None if departments is None else list(departments))).bills
            if departments is not None and any(b.is_empty for b in bills):
                # a department's zero bill is listed only if the period bills it (active resources)
                billed = await departments_to_bill(conn, open_period)
                bills = [b for b in bills if not b.is_empty or b.department_id in billed]
            summaries += [_draft_summary(b) for b in bills]
    return sorted(summaries, key=lambda s: (s["period"], s["department_id"]))


async def list_periods(engine: AsyncEngine, grace_days: int, now: datetime, active_days: int,
                       departments: Sequence[str] | None = None) -> list[dict]:
    """Closed periods with their close, and open periods that have usage, with when they will close and, once
    ended, the active sources whose data has not reached their end. With ``departments`` (a scope's) a closed
    period's bill count and total are theirs alone (Art. 18)."""
    async with snapshot(engine) as conn:
        marks = await load_marks(conn)
        if departments is None:
            closed = await conn.fetch("SELECT period, closed_at, closed_by, bills, total, "
                                      "watermark_override::text AS o FROM billing_periods")
        else:
            closed = await conn.fetch(
                """
                SELECT p.period, p.closed_at, p.closed_by, count(b.bill_id)::int AS bills,
                       coalesce(sum(b.total), 0) AS total, p.watermark_override::text AS o
                FROM billing_periods p LEFT JOIN bills b ON b.period = p.period AND b.department_id = ANY($1::text[])
                GROUP BY p.period, p.closed_at, p.closed_by, p.watermark_override::text
                """,
                departments,
            )
        periods = [{"period": r["period"], "status": "closed", "closes_at": None, "closed_at": r["closed_at"],
                    "closed_by": r["closed_by"], "bills": r["bills"], "total": r["total"],
                    "watermark_override": None if r["o"] is None else orjson.loads(r["o"])} for r in closed]
        for period in await open_periods(conn):
            behind = sources_behind(marks, period, now, active_days) if has_ended(period, now) else []
            periods.append({"period": period, "status": "open", "closes_at": closes_at(period, grace_days),
                            "closed_at": None, "closed_by": None, "bills": None, "total": None,
                            "held_by": [m.source for m in behind]})
    return sorted(periods, key=lambda p: p["period"])

