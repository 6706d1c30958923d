"""Reference data in PostgreSQL, which every service reads: departments and rate cards."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.api import DepartmentIn, RateCardIn
from services.common.db import raw_transaction, without_statement_timeout
from services.common.locks import lock_attribution
from services.common.models import Department, RateCard
from services.projection.rerate import reprice_from
from services.reference.rate_cards import load_rate_cards


class AlreadyExists(Exception):
    pass


class BadParent(Exception):
    """``parent_id`` names no department (``unknown``) or would make a cycle."""

    def __init__(self, detail: str, unknown: bool) -> None:
        super().__init__(detail)
        self.unknown = unknown


async def add_department(engine: AsyncEngine, department: DepartmentIn) -> Department:
    row = Department(id=department.id, name=department.name)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                Department.__table__.insert().values(id=row.id, name=row.name, parent_id=department.parent_id)
                .returning(Department.created_at)
            )
            row.created_at, row.parent_id = result.scalar_one(), department.parent_id
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == "23503":  # foreign_key_violation: no such parent
            raise BadParent(f"parent_id: no department {department.parent_id}", unknown=True) from None
        if getattr(exc.orig, "sqlstate", None) == "23514":  # check_violation: the acyclic trigger (0008)
            raise BadParent("parent_id: a department cannot be its own parent", unknown=False) from None
        raise AlreadyExists(f"id: department {department.id} already exists") from None
    return row


async def list_departments(engine: AsyncEngine, only: Sequence[str] | None = None) -> list[dict]:
    query = select(*Department.__table__.c).order_by(Department.id)
    if only is not None:  # a scope's ids (services.common.scope)
        query = query.where(Department.id.in_(only))
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def store_rate_card(conn, card: RateCardIn, created_by: str, approval: dict | None = None) -> dict:
    """Store a rate card and re-rate stored usage from its effective instant in the caller's transaction,
    holding the attribution lock so no usage batch rates with the old card meanwhile. ``approval``: the
    maker/checker stamps (``proposed_at``, ``approved_by``, ``approved_at``) of services.billing.rate_card_approvals."""
    prices = orjson.loads(card.model_dump_json(include={"prices"}))["prices"]
    stamps = approval or {"proposed_at": None, "approved_by": None, "approved_at": None}
    await without_statement_timeout(conn)  # it re-rates stored usage from effective_from on
    await lock_attribution(conn, exclusive=True)
    try:
        async with conn.transaction():  # a savepoint, so a duplicate version leaves a clean 409
            row = await conn.fetchrow(
                """
                INSERT INTO rate_cards (version, effective_from, currency, prices, created_by, proposed_at,
                                        approved_by, approved_at)
                VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8) RETURNING id, created_at
                """,
                card.version, card.effective_from, card.currency, orjson.dumps(prices).decode(), created_by,
                stamps["proposed_at"], stamps["approved_by"], stamps["approved_at"],
            )
    except asyncpg.UniqueViolationError:
        raise AlreadyExists(f"version: rate card {card.version} already exists") from None
    await reprice_from(conn, card.effective_from, await load_rate_cards(conn))
    return {"id": row["id"], "created_at": row["created_at"], "created_by": created_by, **stamps,
            **card.model_dump()}


async def list_rate_cards(engine: AsyncEngine) -> list[dict]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(*RateCard.__table__.c).order_by(RateCard.effective_from, RateCard.id))
        return [dict(r._mapping) for r in rows]


async def move_department(engine, department_id: str, parent_id: str | None) -> dict | None:
    """Set a department's parent; None if there is no such department, BadParent if the parent is refused."""
    async with raw_transaction(engine) as conn:
        try:
            row = await conn.fetchrow("UPDATE departments SET parent_id = $2 WHERE id = $1 "
                                      "RETURNING id, name, created_at, parent_id", department_id, parent_id)
        except asyncpg.ForeignKeyViolationError:
            raise BadParent(f"parent_id: no department {parent_id}", unknown=True) from None
        except asyncpg.CheckViolationError as exc:  # the acyclic trigger (migration 0008) names the field
            raise BadParent(str(exc), unknown=False) from None
    return None if row is None else dict(row)
