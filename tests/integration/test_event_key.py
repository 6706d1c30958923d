"""The event store's identity is a 128-bit digest of (source, id) (migration 0018): the same digest in SQL as in
its definition, events stored before the migration keep their identity, and a digest shared by two different
pairs makes the second event a dead letter, never a silent drop."""

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
from alembic import command

from services.common.db import asyncpg_dsn, drop_database, ensure_database
from services.common.migrate import alembic_config
from services.metering.event_store import store_events
from tests.integration.support import incoming, scratch_database_url, usage_event

PAIRS = [("urn:a", "1"), ("ab", "c"), ("a", "bc"), ("urn:台州:政务云", "事件-001"), ("s", "x" * 4096),
         ("a\\101\\\\", "\\x00")]  # backslashes are bytes like any other


def _digest(source: str, event_id: str) -> uuid.UUID:
    return uuid.UUID(bytes=hashlib.sha256(source.encode() + b"\x00" + event_id.encode()).digest()[:16])



def _usage(event_id: str, quantity: str) -> dict:
    return usage_event("vm-key-1", "compute.vcpu", quantity, datetime(2057, 3, 1, tzinfo=UTC), event_id=event_id)


async def _store(conn, raws: list[dict]) -> tuple[list[str], list[str]]:
    async with conn.transaction():
        new, dead = await store_events(conn, [incoming(raw) for raw in raws])
    return [item.key[1] for item in new], [row.reason for row in dead]


async def _insert_before_migration(conn, raw: dict) -> None:
    """An event as the worker stored it under the primary key of migrations 0001–0017."""
    item = incoming(raw)
    time, start, end = item.instants
    await conn.execute(
        "INSERT INTO events (source, event_id, type, subject, event_time, meter, quantity, start_at, end_at, payload)"
        " VALUES ($1, $2, $3, $4, $5::text::timestamptz, $6, $7::text::numeric, $8::text::timestamptz,"
        " $9::text::timestamptz, $10)",
        raw["source"], raw["id"], raw["type"], raw["subject"], time, raw["data"]["meter"], raw["data"]["quantity"],
        start, end, item.payload)


async def _check_digests(conn) -> None:
    for source, event_id in PAIRS:
        assert await conn.fetchval("SELECT govmeter_event_key($1, $2)", source, event_id) == _digest(source, event_id)
    assert len({_digest(*pair) for pair in PAIRS}) == len(PAIRS)  # ("ab", "c") and ("a", "bc") differ
    # inlined: the worker evaluates its body per event, not a SQL function call (~4 µs each)
    plan = "\n".join(r[0] for r in await conn.fetch(
        "EXPLAIN (VERBOSE) SELECT govmeter_event_key('a', g::text) FROM generate_series(1, 2) AS g"))
    assert "sha256" in plan and "govmeter_event_key" not in plan, plan


async def _after_migration(url: str, before: dict) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await _check_digests(conn)
        changed = orjson.loads(orjson.dumps(before))
        changed["data"]["quantity"] = "9"
        # stored before the migration: still the same event, and a changed payload is still a conflict
        assert await _store(conn, [before]) == ([], [])
        assert await _store(conn, [changed]) == ([], ["conflicting duplicate"])
        # a digest shared by two different pairs (forced here: every pair's digest the same)
        await conn.execute("DELETE FROM events")
        await conn.execute("DELETE FROM event_keys")
        await conn.execute("""CREATE OR REPLACE FUNCTION govmeter_event_key(source text, event_id text) RETURNS uuid
                              LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                              AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$""")
    finally:
        await conn.close()
    conn = await asyncpg.connect(asyncpg_dsn(url))  # a new session: its index expressions inline the new body
    try:
        assert await _store(conn, [_usage("first", "1")]) == (["first"], [])
        assert await _store(conn, [_usage("second", "1")]) == ([], ["conflicting duplicate"])
    finally:
        await conn.close()


async def _before_migration(url: str, before: dict) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await _insert_before_migration(conn, before)
    finally:
        await conn.close()


def test_event_key_is_the_digest_of_the_pair_and_keeps_events_stored_before_it_and_a_shared_digest_dead_letters():
    url = scratch_database_url()
    before = _usage(str(uuid.uuid4()), "2")
    try:
        asyncio.run(ensure_database(url))
        command.upgrade(alembic_config(url), "0017_bill_list_speed")
        asyncio.run(_before_migration(url, before))
        command.upgrade(alembic_config(url), "head")  # 0018, and the later ones the code stores events under
        asyncio.run(_after_migration(url, before))
    finally:
        asyncio.run(drop_database(url))
