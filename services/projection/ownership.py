"""The ownership projection: resource_intervals re-projected from the stored lifecycle events, and read back."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import orjson

from schemas.events import RESOURCE_TYPE, resource_data_adapter
from services.metering.domain.attribution import LifecycleChange, Ownership, ownership_intervals


async def reproject_ownership(conn, resource_ids: Iterable[str]) -> None:
    """Recompute the ownership intervals of these resources from all their stored lifecycle events."""
    ids = sorted(set(resource_ids))
    rows = await conn.fetch(
        f"""
        SELECT subject, event_time, source, event_id, payload FROM events
        WHERE type = '{RESOURCE_TYPE}' AND subject = ANY($1::text[])
        """,
        ids,
    )
    changes: dict[str, list[LifecycleChange]] = defaultdict(list)
    for row in rows:
        data = resource_data_adapter.validate_python(orjson.loads(row["payload"])["data"])
        changes[row["subject"]].append(
            LifecycleChange(
                data["action"], data["effective_at"], data.get("department_id"), data.get("system", ""),
                data["kind"], data.get("spec", {}), (row["event_time"], row["source"], row["event_id"]),
            )
        )
    intervals = [i for rid in ids for i in ownership_intervals(rid, changes.get(rid, []))]
    await conn.execute("DELETE FROM resource_intervals WHERE resource_id = ANY($1::text[])", ids)
    if intervals:
        await conn.execute(
            """
            INSERT INTO resource_intervals (resource_id, valid_from, valid_to, department_id, system, kind, spec)
            SELECT r, f, t, d, s, k, sp::jsonb
            FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
                        $7::text[]) AS i(r, f, t, d, s, k, sp)
            """,
            [i.resource_id for i in intervals],
            [i.valid_from for i in intervals],
            [i.valid_to for i in intervals],
            [i.department_id for i in intervals],
            [i.system for i in intervals],
            [i.kind for i in intervals],
            [orjson.dumps(i.spec).decode() for i in intervals],
        )
    await conn.execute("UPDATE projection_state SET ownership_version = ownership_version + 1 WHERE id = 1")


async def load_ownership(conn, resource_ids: Iterable[str] | None = None) -> dict[str, list[Ownership]]:
    """Ownership intervals by resource, sorted by valid_from; all resources when ``resource_ids`` is None."""
    query = "SELECT resource_id, valid_from, valid_to, department_id, system, kind, spec FROM resource_intervals"
    if resource_ids is None:
        rows = await conn.fetch(query + " ORDER BY resource_id, valid_from")
    else:
        rows = await conn.fetch(
            query + " WHERE resource_id = ANY($1::text[]) ORDER BY resource_id, valid_from", list(resource_ids)
        )
    owners: dict[str, list[Ownership]] = defaultdict(list)
    for r in rows:
        owners[r["resource_id"]].append(
            Ownership(r["resource_id"], r["valid_from"], r["valid_to"], r["department_id"], r["system"], r["kind"], r["spec"])
        )
    return owners


async def projection_versions(conn) -> tuple[int, int]:
    row = await conn.fetchrow("SELECT ownership_version, rate_card_version FROM projection_state WHERE id = 1")
    return row["ownership_version"], row["rate_card_version"]
