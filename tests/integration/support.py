"""Helpers for the integration tests: tokens, event builders, waiting on the worker, reading the store."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import text

from schemas.events import judge_event
from services.common.auth import issue_token
from services.common.db import get_engine
from services.metering.event_store import IncomingEvent, InstantText, incoming_event

SOURCE = "urn:test:provider"


def scratch_database_url(name: str = "migrations") -> str:
    """A database of a test's own (made and dropped by the test): for migrations and for what changes the whole
    store, kept apart from the one the other tests share."""
    return f"postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/govmeter_{name}_{uuid.uuid4().hex[:8]}"


def incoming(raw: dict) -> IncomingEvent:
    """A valid event as the worker hands it to the event store."""
    event, errors, payload = judge_event(raw)
    assert not errors
    return incoming_event(event, raw, payload, InstantText())


def auth(role: str, department: str | None = None, sources: tuple[str, ...] = ()) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(role, department, sources=sources)}"}


ADMIN, FINANCE = auth("admin"), auth("finance")
PROVIDER = auth("provider", sources=(SOURCE,))

async def wait_until(check, timeout: float = 60.0, interval: float = 0.1, worker=None):
    """Poll an async ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"\nworker log:\n{worker.log_tail()}" if worker else ""
            raise AssertionError(f"condition not met within {timeout}s{detail}")
        await asyncio.sleep(interval)


def usage_event(resource: str, meter: str, quantity, start: datetime, end: datetime | None = None,
                event_id: str | None = None, source: str = SOURCE, **attributes) -> dict:
    end = end or start + timedelta(hours=1)
    return {
        "specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": source, "type": "gov.cloud.usage.v1",
        "subject": resource, "time": end.isoformat(),
        "data": {"meter": meter, "quantity": str(quantity), "start": start.isoformat(), "end": end.isoformat(),
                 "attributes": attributes},
    }


def lifecycle_event(resource: str, action: str, department: str | None, effective_at: datetime,
                    system: str = "政务服务平台", kind: str = "vm", spec: dict | None = None,
                    event_id: str | None = None) -> dict:
    return {
        "specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": SOURCE, "type": "gov.cloud.resource.v1",
        "subject": resource, "time": effective_at.isoformat(),
        "data": {"action": action, "department_id": department, "system": system,
                 "effective_at": effective_at.isoformat(), "kind": kind, "spec": spec or {"vcpu": 4}},
    }


async def stored_count(events: list[dict]) -> int:
    async with get_engine().connect() as conn:
        # (source, id) pairs joined on the event store's key (event_keys, written with each event): cheap for
        # 60,000 ids, within the statement timeout
        result = await conn.execute(
            text("SELECT count(*) FROM event_keys e JOIN unnest(CAST(:s AS text[]), CAST(:i AS text[])) AS k(s, i) "
                 "ON e.key = govmeter_event_key(k.s, k.i)"),
            {"s": [e["source"] for e in events], "i": [e["id"] for e in events]},
        )
        return result.scalar_one()


async def wait_stored(events: list[dict], worker=None, timeout: float = 90.0, stall: float | None = None) -> None:
    """Wait until the worker has committed these events (and so their effect on the rollups). With ``stall``,
    ``timeout`` is how long the count may stay still (a consumer group rejoin, a busy machine), not the total
    time: waits on progress, with a generous overall bound of ten timeouts."""
    wanted = len({(e["source"], e["id"]) for e in events})
    if stall is None:
        async def done():
            return await stored_count(events) >= wanted

        await wait_until(done, timeout=timeout, worker=worker)
        return
    start = last_change = time.monotonic()
    seen = -1
    while (count := await stored_count(events)) < wanted:
        now = time.monotonic()
        if count != seen:
            seen, last_change = count, now
        if now - last_change > stall or now - start > 10 * stall:
            detail = f"\nworker log:\n{worker.log_tail()}" if worker else ""
            raise AssertionError(f"{count} of {wanted} events stored, no progress for {now - last_change:.0f}s{detail}")
        await asyncio.sleep(0.2)


async def dead_letters(**where) -> list[dict]:
    clauses = " AND ".join(f"{k} = :{k}" for k in where) or "true"
    async with get_engine().connect() as conn:
        rows = await conn.execute(text(f"SELECT * FROM dead_letters WHERE {clauses} ORDER BY id"), where)
        return [dict(r._mapping) for r in rows]


async def usage_rows(client, headers, **params) -> list[dict]:
    response = await client.get("/v1/usage", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


async def post_events(client, events, headers=None, content_type: str | None = None):
    import orjson

    headers = dict(headers or PROVIDER)
    if content_type:
        headers["content-type"] = content_type
    else:
        headers["content-type"] = "application/json"
    return await client.post("/v1/events", content=orjson.dumps(events), headers=headers)


def money(value: str) -> Decimal:
    return Decimal(value)
