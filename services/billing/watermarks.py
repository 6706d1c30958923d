"""Reading the sources' watermarks (kept by the metering worker, services/metering/watermarks.py) for the close
and for ``GET /v1/sources``."""

from __future__ import annotations

from datetime import datetime
from typing import Collection

from sqlalchemy.ext.asyncio import AsyncEngine

from services.bill_reads.bills import open_periods, snapshot
from services.billing.domain.periods import has_ended
from services.billing.domain.watermarks import SourceMark, describe, is_active, is_behind
from services.common.periods import month_bounds


class HeldBySources(Exception):
    """The period cannot close yet: active sources have not delivered data up to its end."""

    def __init__(self, period: str, behind: list[SourceMark]) -> None:
        self.period = period
        self.behind = behind
        super().__init__(
            f"period: {period} waits for source(s) whose data has not reached its end "
            f"({month_bounds(period)[1].isoformat()}): {describe(behind)}. Close it anyway with "
            "override_watermarks and a reason")


async def load_marks(conn, sources: Collection[str] | None = None) -> list[SourceMark]:
    rows = await conn.fetch(
        """
        SELECT source, complete_up_to, last_seen_at, events FROM source_watermarks
        WHERE $1::text[] IS NULL OR source = ANY($1::text[]) ORDER BY source
        """,
        None if sources is None else sorted(sources),
    )
    return [SourceMark(r["source"], r["complete_up_to"], r["last_seen_at"], r["events"]) for r in rows]


async def source_report(engine: AsyncEngine, now: datetime, active_days: int,
                        sources: Collection[str] | None = None) -> list[dict]:
    """Each source (``sources``: among these) with its watermark, whether it is active, and the open periods
    that have ended and that it holds (it is behind their end)."""
    async with snapshot(engine) as conn:
        marks = await load_marks(conn, sources)
        ended = [p for p in await open_periods(conn) if has_ended(p, now)] if marks else []
    return [{"source": m.source, "complete_up_to": m.complete_up_to, "last_seen_at": m.last_seen_at,
             "events": m.events, "active": is_active(m, now, active_days),
             "holds": [p for p in ended if is_behind(m, p, now, active_days)]} for m in marks]
