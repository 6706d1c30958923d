"""The recent period closes and how long each took, for the operators (GET /v1/closes on the billing API).

Read from what a close records on its period (services/billing/closing.py; start and finish since migration 0008).
The closes carry the city's totals, so a department token is refused: its own bills are on GET /v1/bills."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.api import Role
from schemas.operations import CloseOut
from services.common.auth import Principal
from services.common.scope import require_city_wide
from services.common.db import get_engine, raw_connection


def close_duration(started_at: datetime | None, finished_at: datetime | None) -> float | None:
    """Seconds from the close's start to its finish; None when either was not recorded (closes before 0008)."""
    if started_at is None or finished_at is None:
        return None
    return round((finished_at - started_at).total_seconds(), 3)


async def recent_closes(engine: AsyncEngine, limit: int) -> list[CloseOut]:
    """The last ``limit`` closes, newest first (in the order they happened, not by period)."""
    async with raw_connection(engine) as conn:
        rows = await conn.fetch(
            """
            SELECT period, close_started_at, closed_at, close_finished_at, closed_by, closed_by_instance, bills,
                   total, watermark_override IS NOT NULL AS overridden
            FROM billing_periods ORDER BY close_seq DESC LIMIT $1
            """,
            limit,
        )
    return [CloseOut(period=r["period"], started_at=r["close_started_at"], closed_at=r["closed_at"],
                     finished_at=r["close_finished_at"],
                     duration_seconds=close_duration(r["close_started_at"], r["close_finished_at"]),
                     closed_by=r["closed_by"], instance=r["closed_by_instance"], bills=r["bills"], total=r["total"],
                     watermark_override=r["overridden"])
            for r in rows]


router = APIRouter()


@router.get("/v1/closes", response_model=list[CloseOut], tags=["billing"])
async def get_closes(_: Annotated[Principal, Depends(require_city_wide(Role.PROVIDER, Role.FINANCE, Role.ADMIN))],
                     limit: Annotated[int, Query(ge=1, le=1000)] = 50):
    """The most recent period closes, newest first: the period, when the close started (before its lock waits),
    the instant its bills describe, when it finished, how long it took, who asked (an admin's subject or
    ``auto-close``), the billing API instance that ran it, the bills issued and their total, and whether it
    overrode the data-complete watermarks. Not for department tokens (the totals are the city's)."""
    return await recent_closes(get_engine(), limit)
