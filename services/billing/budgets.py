"""Budgets and their alerts in PostgreSQL and on Kafka (formulas in ``domain.budgets``).

Alerts are stored once (a unique key per department, year, kind and period) and published from the table (an
outbox), so an alert is on the topic even if the broker was away when it was raised."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.money import yuan_text
from services.bill_reads.bills import closed_periods, open_periods_with_usage, period_bills, snapshot
from services.billing.closing import UnknownDepartment
from services.billing.domain.budgets import RunRate, budget_alerts
from services.billing.domain.periods import next_open_period
from services.billing.domain.render import local_text
from services.common.db import raw_connection, raw_transaction
from services.common.metrics import BUDGET_ALERTS
from services.common.periods import HOUR, month_bounds


async def put_budget(engine: AsyncEngine, department_id: str, year: int, amount: Decimal, updated_by: str) -> dict:
    async with raw_transaction(engine) as conn:
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM departments WHERE id = $1)", department_id):
            raise UnknownDepartment(f"department_id: unknown department {department_id!r}")
        row = await conn.fetchrow(
            """
            INSERT INTO budgets (department_id, year, amount, updated_by, updated_at) VALUES ($1, $2, $3, $4, now())
            ON CONFLICT (department_id, year) DO UPDATE SET amount = EXCLUDED.amount,
                updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
            RETURNING department_id, year, amount, updated_by, updated_at
            """,
            department_id, year, amount, updated_by,
        )
    return dict(row)


async def list_budgets(engine: AsyncEngine, department_ids: Sequence[str] | None, year: int | None) -> list[dict]:
    async with raw_connection(engine) as conn:
        rows = await conn.fetch(
            """
            SELECT department_id, year, amount, updated_by, updated_at FROM budgets
            WHERE ($1::text[] IS NULL OR department_id = ANY($1::text[])) AND ($2::int IS NULL OR year = $2)
            ORDER BY year, department_id
            """,
            department_ids, year,
        )
    return [dict(r) for r in rows]


async def year_spend(conn, department_id: str, year: int) -> tuple[Decimal, RunRate | None]:
    """What a department's bills for ``year`` come to (final bills as issued, open periods' drafts as they
    stand), and the run rate of its latest open period with usage. Call in a REPEATABLE READ transaction."""
    prefix = f"{year:04d}-"
    totals: dict[str, Decimal] = {
        r["period"]: r["total"]
        for r in await conn.fetch("SELECT period, total FROM bills WHERE department_id = $1 AND period LIKE $2",
                                  department_id, prefix + "%")
    }
    closed = await closed_periods(conn)
    with_usage = [p for p in await open_periods_with_usage(conn, department_id) if p.startswith(prefix)]
    # open periods that may carry late adjustments for this year's closed periods
    carrying = {next_open_period(p, closed) for p in closed if p.startswith(prefix)}
    drafts = {}
    for period in sorted(set(with_usage) | {p for p in carrying if p.startswith(prefix)}):
        (bill,) = (await period_bills(conn, period, status="draft", as_of=month_bounds(period)[0],
                                      departments=[department_id], versioned=True)).bills
        drafts[period] = bill
        totals[period] = bill.total
    spend = sum(totals.values(), Decimal(0))
    rate = None
    if with_usage:
        period = with_usage[-1]
        start, end = month_bounds(period)
        last_hour = await conn.fetchval(
            "SELECT max(hour) FROM usage_hourly WHERE department_id = $1 AND hour >= $2 AND hour < $3",
            department_id, start, end,
        )
        if last_hour is not None:
            covered = Decimal((last_hour + HOUR - start) // timedelta(seconds=1)) / 3600
            bill = drafts[period]
            rate = RunRate(period, bill.usage_total, bill.adjustments_total,
                           sum((t for p, t in totals.items() if p < period), Decimal(0)),
                           covered, Decimal((end - start) // timedelta(seconds=1)) / 3600)
    return spend, rate


async def evaluate_budget(engine: AsyncEngine, department_id: str, year: int, min_hours: int) -> list[dict]:
    """Raise the alerts a budget calls for now; returns the ones that are new."""
    async with snapshot(engine) as conn:
        budget = await conn.fetchval("SELECT amount FROM budgets WHERE department_id = $1 AND year = $2",
                                     department_id, year)
        if budget is None:
            return []
        spend, rate = await year_spend(conn, department_id, year)
    due = budget_alerts(department_id, year, budget, spend, rate, min_hours)
    if not due:
        return []
    async with raw_transaction(engine) as conn:
        rows = await conn.fetch(
            """
            INSERT INTO budget_alerts (department_id, year, kind, period, budget, spend, projected, message)
            SELECT $1, $2, k, p, $3, s, pr, m
            FROM unnest($4::text[], $5::text[], $6::numeric[], $7::numeric[], $8::text[]) AS a(k, p, s, pr, m)
            ON CONFLICT (department_id, year, kind, period) DO NOTHING
            RETURNING *
            """,
            department_id, year, budget, [a.kind for a in due], [a.period for a in due], [a.spend for a in due],
            [a.projected for a in due], [a.message for a in due],
        )
    return [dict(r) for r in rows]


async def evaluate_all_budgets(engine: AsyncEngine, min_hours: int) -> int:
    async with raw_connection(engine) as conn:
        budgets = await conn.fetch("SELECT department_id, year FROM budgets ORDER BY year, department_id")
    raised = 0
    for row in budgets:
        raised += len(await evaluate_budget(engine, row["department_id"], row["year"], min_hours))
    return raised


def alert_message(row: dict) -> dict:
    return {
        "id": row["id"],
        "department_id": row["department_id"],
        "year": row["year"],
        "kind": row["kind"],
        "period": row["period"],
        "budget": yuan_text(row["budget"]),
        "spend": yuan_text(row["spend"]),
        "projected": None if row["projected"] is None else yuan_text(row["projected"]),
        "message": row["message"],
        "created_at": local_text(row["created_at"]),
    }


async def publish_alerts(engine: AsyncEngine, producer, topic: str) -> int:
    """Put unpublished alerts on the alerts topic and mark them published. Rows are locked while being sent,
    so two instances never send the same alert; a failed send leaves it for the next round."""
    async with raw_transaction(engine) as conn:
        rows = await conn.fetch(
            "SELECT * FROM budget_alerts WHERE published_at IS NULL ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED"
        )
        for row in rows:
            await producer.send_and_wait(topic, orjson.dumps(alert_message(dict(row))),
                                         key=row["department_id"].encode())
        if rows:
            await conn.execute("UPDATE budget_alerts SET published_at = now() WHERE id = ANY($1::bigint[])",
                               [r["id"] for r in rows])
    for row in rows:
        BUDGET_ALERTS.labels(row["kind"]).inc()
    return len(rows)


async def list_alerts(engine: AsyncEngine, department_ids: Sequence[str] | None, year: int | None) -> list[dict]:
    async with raw_connection(engine) as conn:
        rows = await conn.fetch(
            """
            SELECT * FROM budget_alerts
            WHERE ($1::text[] IS NULL OR department_id = ANY($1::text[])) AND ($2::int IS NULL OR year = $2)
            ORDER BY id
            """,
            department_ids, year,
        )
    return [dict(r) for r in rows]

