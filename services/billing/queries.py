"""What the billing API reads besides bills (services.bill_reads.issued): the periods."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from services.bill_reads.bills import open_periods, snapshot
from services.billing.domain.periods import closes_at, has_ended
from services.billing.domain.watermarks import sources_behind
from services.billing.watermarks import load_marks


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

