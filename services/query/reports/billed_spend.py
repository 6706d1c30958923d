"""The budget basis's spend read from the bills (Art. 19): final bills as issued (their stored JSON) and the
drafts of open months as they stand, so manual adjustments, dispute credits and late adjustments count, and the
basis agrees with the budgets (services.billing.budgets.year_spend reads the same bills)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import orjson

from services.bill_reads.bills import closed_periods, period_bills, snapshot
from services.billing.domain.billed import BilledMonth, billed_month
from services.billing.domain.render import bill_document
from services.common.db import get_engine


async def billed_spend(months: list[str]) -> dict[str, dict[str, BilledMonth]]:
    """department → month → what its bill of that month charged, for ``months`` (YYYY-MM)."""
    spend: dict[str, dict[str, BilledMonth]] = defaultdict(dict)
    async with snapshot(get_engine()) as conn:
        closed = await closed_periods(conn)
        for r in await conn.fetch("SELECT department_id, period, document FROM bills WHERE period = ANY($1::text[])",
                                  [m for m in months if m in closed]):
            _keep(spend, r["department_id"], r["period"], orjson.loads(bytes(r["document"])))
        now = datetime.now(UTC)
        for month in (m for m in months if m not in closed):
            for bill in (await period_bills(conn, month, status="draft", as_of=now, versioned=True)).bills:
                _keep(spend, bill.department_id, month, bill_document(bill))
    return spend


def _keep(spend: dict, department_id: str, month: str, document: dict) -> None:
    # a bill with neither lines nor adjustments (a department with idle resources only) charged nothing
    if document["lines"] or document["adjustments"]:
        spend[department_id][month] = billed_month(document)
