"""Resource applications in PostgreSQL: stored, moved through their steps (one row lock, one transaction per
step), listed within a caller's scope, and counted late for the platform report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Awaitable, Callable

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.applications import ApplicationIn
from services.billing.domain.applications import Due, next_state
from services.common.db import raw_connection, raw_transaction

COLUMNS = """id, department_id, system, kind, items, spec, reason, wanted_by, state, estimate, estimate_rate_card,
    submitted_by, submitted_at, approval_due_at, approval_calendar, decided_at, fulfilment_due_at,
    fulfilment_calendar, fulfilled_at, resource_id"""
TRIAL_COLUMNS = """application_id, department_id, resource_id, starts_at, planned_ends_at, ends_at, rate,
    recorded_at, went_live_by, went_live_at"""
OPEN_AND_PAST_DUE = """((state IN ('submitted', 'accepted') AND approval_due_at < $1)
    OR (state = 'approved' AND fulfilment_due_at < $1))"""


class NotFound(LookupError):
    pass


class UnknownDepartment(ValueError):
    pass


@dataclass(frozen=True)
class Actor:
    subject: str
    role: str
    department: str | None  # a department token's department: it may touch only its own applications


async def submit(engine: AsyncEngine, application: ApplicationIn, department_id: str, actor: Actor, now: datetime,
                 estimate: Decimal, rate_card: str | None, due: Due) -> int:
    async with raw_transaction(engine) as conn:
        if await conn.fetchval("SELECT 1 FROM departments WHERE id = $1", department_id) is None:
            raise UnknownDepartment(f"department_id: no department {department_id}")
        application_id = await conn.fetchval(
            f"""
            INSERT INTO applications ({COLUMNS.replace('id, ', '', 1)})
            VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, 'submitted', $8, $9, $10, $11, $12, $13,
                    NULL, NULL, NULL, NULL, NULL)
            RETURNING id
            """,
            department_id, application.system, application.kind,
            orjson.dumps([{"meter": i.meter, "quantity": str(i.quantity)} for i in application.items]).decode(),
            orjson.dumps(application.spec).decode(),
            application.reason, application.wanted_by, estimate, rate_card, actor.subject, now, due.at, due.calendar,
        )
        await _step(conn, application_id, "submit", "submitted", actor, now, None)
    return application_id


async def _step(conn, application_id: int, action: str, state: str, actor: Actor, now: datetime,
                note: str | None) -> None:
    await conn.execute(
        """
        INSERT INTO application_steps (application_id, seq, action, state, actor, role, at, note)
        SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5, $6, $7 FROM application_steps WHERE application_id = $1
        """,
        application_id, action, state, actor.subject, actor.role, now, note,
    )


# What a step writes besides the state: column → value, decided from the locked row.
Changes = dict[str, object]
BeforeCommit = Callable[[dict], Awaitable[None]]
Writes = Callable[[object, dict], Awaitable[None]]  # (connection, locked row): more rows the step writes


async def move(engine: AsyncEngine, application_id: int, action: str, actor: Actor, now: datetime,
               note: str | None, changes: Callable[[dict], Changes] = lambda row: {},
               before_commit: BeforeCommit | None = None, writes: Writes | None = None) -> None:
    """Move one application by ``action``: NotFound outside the actor's scope, IllegalTransition (naming the
    state) when its state does not allow it. ``before_commit(row)`` runs with the row locked, after the state
    check (a fulfilment publishes its event there: nothing is written unless the broker took it)."""
    async with raw_transaction(engine) as conn:
        row = await conn.fetchrow(f"SELECT {COLUMNS} FROM applications WHERE id = $1 FOR UPDATE", application_id)
        if row is None or (actor.department is not None and row["department_id"] != actor.department):
            raise NotFound(f"application_id: no application {application_id}")
        target = next_state(row["state"], action)
        row = dict(row)
        extra = changes(row)
        if writes is not None:
            await writes(conn, row)
        if before_commit is not None:
            await before_commit(row)
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(extra, start=3))
        await conn.execute(f"UPDATE applications SET state = $2{', ' if extra else ''}{assignments} WHERE id = $1",
                           application_id, target, *extra.values())
        await _step(conn, application_id, action, target, actor, now, note)


async def read(engine: AsyncEngine, department: str | None, application_id: int | None = None,
               overdue_at: datetime | None = None, state: str | None = None, limit: int = 500) -> list[dict]:
    """Applications (newest first) with their steps: one, or those of ``department`` (None: every department),
    only the open ones whose running clock ran out before ``overdue_at`` when given, or in ``state``."""
    where, args = ["($2::text IS NULL OR department_id = $2)"], [overdue_at, department]
    if application_id is not None:
        args.append(application_id)
        where.append(f"id = ${len(args)}")
    where.append(f"($1::timestamptz IS NULL OR {OPEN_AND_PAST_DUE})")
    if state is not None:
        args.append(state)
        where.append(f"state = ${len(args)}")
    args.append(limit)
    async with raw_connection(engine) as conn:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM applications WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ${len(args)}",
            *args)
        steps = await conn.fetch(
            "SELECT application_id, seq, action, state, actor, role, at, note FROM application_steps "
            "WHERE application_id = ANY($1::bigint[]) ORDER BY application_id, seq", [r["id"] for r in rows])
        trials = {t["application_id"]: dict(t) for t in await conn.fetch(
            f"SELECT {TRIAL_COLUMNS} FROM resource_trials WHERE application_id = ANY($1::bigint[])",
            [r["id"] for r in rows])}
    by_application: dict[int, list[dict]] = {}
    for step in steps:
        by_application.setdefault(step["application_id"], []).append(dict(step))
    return [{**dict(r), "steps": by_application.get(r["id"], []), "trial": trials.get(r["id"])} for r in rows]

