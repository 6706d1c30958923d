"""Re-rating stored usage: after an ownership change (from the hour it takes effect) or a new rate card."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from schemas.events import USAGE_TYPE
from services.common.periods import floor_hour
from services.metering.domain.attribution import Ownership
from services.metering.domain.rating import MeteredUsage, RateCardPrices, RollupDelta, RollupKey, rate_usage
from services.projection.ownership import load_ownership
from services.projection.rollups import apply_rollup_deltas


async def rebuild_rollups(
    conn, from_hours: dict[str, datetime], owners: dict[str, list[Ownership]], cards: list[RateCardPrices]
) -> None:
    """Re-rate the stored usage of some resources from an hour on (after an ownership or price change)."""
    if not from_hours:
        return
    ids = sorted(from_hours)
    starts = [from_hours[r] for r in ids]
    removed = await conn.fetch(
        """
        DELETE FROM usage_hourly h USING unnest($1::text[], $2::timestamptz[]) AS r(rid, h0)
        WHERE h.resource_id = r.rid AND h.hour >= r.h0
        RETURNING h.hour, h.department_id, h.system, h.meter, h.quantity, h.amount, h.unpriced_quantity
        """,
        ids,
        starts,
    )
    rows = await conn.fetch(
        f"""
        SELECT e.subject, e.meter, e.quantity, e.start_at, e.end_at
        FROM events e JOIN unnest($1::text[], $2::timestamptz[]) AS r(rid, h0)
          ON e.subject = r.rid AND e.end_at > r.h0
        WHERE e.type = '{USAGE_TYPE}'
        """,
        ids,
        starts,
    )
    usage_by_resource: dict[str, list[MeteredUsage]] = defaultdict(list)
    for r in rows:
        usage_by_resource[r["subject"]].append(
            MeteredUsage(r["subject"], r["meter"], r["quantity"], r["start_at"], r["end_at"])
        )
    deltas: dict[RollupKey, RollupDelta] = {}
    for resource_id, usages in usage_by_resource.items():
        deltas.update(rate_usage(usages, owners, cards, from_hour=from_hours[resource_id]))
    await apply_rollup_deltas(conn, deltas, removed=removed)


async def reprice_from(conn, effective_from: datetime, cards: list[RateCardPrices]) -> int:
    """After a rate card is added: re-rate all stored usage from the hour holding its effective instant with
    ``cards`` (every card, the new one included). Returns how many resources were re-rated. The caller holds the
    attribution lock exclusively."""
    hour = floor_hour(effective_from)
    await conn.execute("UPDATE projection_state SET rate_card_version = rate_card_version + 1 WHERE id = 1")
    resource_ids = [
        r["resource_id"] for r in await conn.fetch("SELECT DISTINCT resource_id FROM usage_hourly WHERE hour >= $1", hour)
    ]
    if resource_ids:
        owners = await load_ownership(conn, resource_ids)
        await rebuild_rollups(conn, {r: hour for r in resource_ids}, owners, cards)
    return len(resource_ids)
