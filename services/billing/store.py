"""Billing reference data in PostgreSQL: departments and rate cards."""

from __future__ import annotations

import asyncpg
import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.api import DepartmentIn, RateCardIn
from services.common.db import without_statement_timeout
from services.common.models import Department, RateCard
from services.metering.store import lock_attribution, reprice_from


class AlreadyExists(Exception):
    pass


async def add_department(engine: AsyncEngine, department: DepartmentIn) -> Department:
    row = Department(id=department.id, name=department.name)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(
                Department.__table__.insert().values(id=row.id, name=row.name).returning(Department.created_at)
            )
            row.created_at = result.scalar_one()
    except IntegrityError:
        raise AlreadyExists(f"id: department {department.id} already exists") from None
    return row


async def list_departments(engine: AsyncEngine, only: str | None = None) -> list[dict]:
    query = select(*Department.__table__.c).order_by(Department.id)
    if only is not None:
        query = query.where(Department.id == only)
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
    await reprice_from(conn, card.effective_from)
    return {"id": row["id"], "created_at": row["created_at"], "created_by": created_by, **stamps,
            **card.model_dump()}


async def list_rate_cards(engine: AsyncEngine) -> list[dict]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(*RateCard.__table__.c).order_by(RateCard.effective_from, RateCard.id))
        return [dict(r._mapping) for r in rows]
