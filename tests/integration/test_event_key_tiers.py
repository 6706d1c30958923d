"""The event store's key in two tiers (services/metering/key_tiers.py, migrations 0020 and 0021): an event counts once
whichever tier holds its key, a changed payload is a conflicting duplicate across tiers too, a digest shared by two
pairs is still a dead letter, the indexes are the ones the boundary names and the planner uses them, and moving
the boundary while batches are stored loses nothing and counts nothing twice. Each test on a database of its own:
the boundary is the whole store's."""

import asyncio
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
from alembic import command

from services.common.db import asyncpg_dsn, drop_database, ensure_database
from services.common.locks import lock_attribution
from services.common.migrate import alembic_config
from services.metering import key_tiers
from services.metering.event_store import store_events
from services.metering.isolation import is_refusal
from tests.integration.support import incoming, scratch_database_url, usage_event

START = datetime(2058, 5, 1, tzinfo=UTC)


def _usage(event_id: str, quantity: str = "1") -> dict:
    return usage_event("vm-tiers-1", "compute.vcpu", quantity, START, event_id=event_id)



def _changed(raw: dict) -> dict:
    changed = orjson.loads(orjson.dumps(raw))
    changed["data"]["quantity"] = "9"
    return changed


async def _store(conn, raws: list[dict]) -> tuple[list[str], list[str]]:
    async with conn.transaction():
        await lock_attribution(conn, exclusive=False)  # as the worker's batches
        new, dead = await store_events(conn, [incoming(raw) for raw in raws])
    return sorted(item.key[1] for item in new), [row.reason for row in dead]


async def _settle(conn, boundary: datetime | None) -> list[str]:
    return await key_tiers.settle_event_keys(conn, boundary)


def _scratch(work) -> None:
    url = scratch_database_url()
    try:
        asyncio.run(ensure_database(url))
        command.upgrade(alembic_config(url), "head")
        asyncio.run(work(asyncpg_dsn(url)))
    finally:
        asyncio.run(drop_database(url))


async def _uses_index(conn, sql: str, index: str, *args) -> None:
    # the scratch tables are tiny, where a sequential scan is cheapest: forbid it to see the index is usable
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))
    assert index in plan, plan


async def _counts_once_in_either_tier(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        assert await key_tiers.settled_before(conn) is None
        assert [name for name, _, _ in await key_tiers.key_indexes(conn)] == ["uq_events_key"]
        old = _usage("old")
        assert await _store(conn, [old]) == (["old"], [])

        boundary = await conn.fetchval("SELECT now()")
        settled, recent = key_tiers.index_names(boundary)
        assert await _settle(conn, boundary) == sorted([settled, recent])
        assert await key_tiers.settled_before(conn) == boundary
        assert all(valid for _, valid, _ in await key_tiers.key_indexes(conn))

        # settled: found by the read of its index, never stored again
        assert await _store(conn, [old]) == ([], [])
        assert await _store(conn, [_changed(old)]) == ([], ["conflicting duplicate"])
        # recent: refused by its index
        new = _usage("new")
        assert await _store(conn, [new, _usage("other")]) == (["new", "other"], [])
        assert await _store(conn, [new, old]) == ([], [])
        assert await _store(conn, [_changed(new)]) == ([], ["conflicting duplicate"])
        assert await conn.fetchval("SELECT count(*) FROM events") == 3
        received = await conn.fetchval("SELECT min(received_at) FROM events WHERE event_id = 'new'")
        assert received >= boundary

        # the planner matches the boundary's constant to each partial index
        probe = f"SELECT FROM (VALUES ('{old['source']}', 'old')) AS s(source, event_id) " \
                + key_tiers.unsettled(boundary, "s")
        await _uses_index(conn, probe, settled)
        lookup = key_tiers.stored_by_key(boundary, "k.event_id",
                                         "unnest($1::text[], $2::text[]) AS k(source, event_id)")
        await _uses_index(conn, lookup, settled, [old["source"]], ["old"])
        await _uses_index(conn, lookup, recent, [old["source"]], ["old"])

        # moved on: what was recent is settled, and back to one index
        later = await conn.fetchval("SELECT now()")
        assert await _settle(conn, later) == sorted(key_tiers.index_names(later))
        assert await _store(conn, [old, new, _usage("third")]) == (["third"], [])
        assert await _store(conn, [_changed(new)]) == ([], ["conflicting duplicate"])
        assert await _settle(conn, None) == ["uq_events_key"]
        assert await _store(conn, [old, new, _usage("third"), _usage("fourth")]) == (["fourth"], [])
        assert await conn.fetchval("SELECT count(*) FROM events") == 5

        with pytest.raises(ValueError, match="future"):
            await _settle(conn, datetime.now(UTC) + timedelta(days=1))
    finally:
        await conn.close()


def test_an_event_counts_once_whichever_tier_holds_its_key_and_a_changed_payload_is_a_conflict_in_either():
    _scratch(_counts_once_in_either_tier)


async def _shared_digest(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        # every pair's digest the same (forced), with the first pair's key settled
        await conn.execute("""CREATE OR REPLACE FUNCTION govmeter_event_key(source text, event_id text) RETURNS uuid
                              LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                              AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$""")
    finally:
        await conn.close()
    conn = await asyncpg.connect(dsn)  # a new session: its statements inline the new body
    try:
        assert await _store(conn, [_usage("first")]) == (["first"], [])
        await _settle(conn, await conn.fetchval("SELECT now()"))
        assert await _store(conn, [_usage("second")]) == ([], ["conflicting duplicate"])
        assert await conn.fetchval("SELECT count(*) FROM events") == 1
    finally:
        await conn.close()


def test_a_digest_shared_with_a_settled_pair_makes_the_newcomer_a_dead_letter():
    _scratch(_shared_digest)


async def _interrupted(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await _store(conn, [_usage("kept")])
        boundary = await conn.fetchval("SELECT now()")
        settled, _ = key_tiers.index_names(boundary)
        # as a build interrupted half way leaves it: the index there, marked invalid
        await conn.execute(f"CREATE UNIQUE INDEX {settled} ON event_keys (key) "
                           f"WHERE received_at < '{boundary.isoformat()}'::timestamptz")
        await conn.execute(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{settled}'::regclass")
        await _settle(conn, boundary)
        assert all(valid for _, valid, _ in await key_tiers.key_indexes(conn))
        assert await _store(conn, [_usage("kept")]) == ([], [])
    finally:
        await conn.close()


def test_a_build_left_invalid_is_built_again():
    _scratch(_interrupted)


async def _moving_while_storing(dsn: str) -> None:
    """Batches of new and already stored events (from two connections) go on while the boundary moves twice and
    back to one index: every event is stored once, none is a dead letter."""
    writers = [await asyncpg.connect(dsn) for _ in range(2)]
    mover = await asyncpg.connect(dsn)
    sent: list[dict] = []
    stop = asyncio.Event()
    failures: list[str] = []

    async def write(conn, rng: random.Random) -> None:
        n = 0
        while not stop.is_set() or n < 5:
            batch = [_usage(f"{id(conn)}-{n}-{i}") for i in range(40)]
            batch += rng.sample(sent, min(len(sent), 40))  # redelivered: exact duplicates, either tier
            sent.extend(batch[:40])
            _, dead = await _store(conn, batch)
            if dead:
                failures.extend(dead)
            n += 1

    try:
        tasks = [asyncio.create_task(write(conn, random.Random(k))) for k, conn in enumerate(writers)]
        await asyncio.sleep(0.3)
        for _ in range(2):
            await _settle(mover, await mover.fetchval("SELECT now()"))
            await asyncio.sleep(0.2)
        await _settle(mover, None)
        stop.set()
        await asyncio.gather(*tasks)
        assert failures == []
        ids = [r[0] for r in await mover.fetch("SELECT event_id FROM events")]
        assert len(ids) == len(set(ids)) == len({e["id"] for e in sent})
    finally:
        stop.set()
        for conn in [*writers, mover]:
            await conn.close()


def test_moving_the_boundary_while_batches_are_stored_loses_nothing_and_counts_nothing_twice():
    _scratch(_moving_while_storing)


async def _begun_before(dsn: str) -> None:
    """A batch whose transaction began before the boundary it reads would stamp its events into the settled index,
    where neither the recent index nor a concurrent recent insert would check them: it is retried instead."""
    batch, mover = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        boundary = await mover.fetchval("SELECT now()")
        await _settle(mover, boundary)
        transaction = batch.transaction()
        await transaction.start()
        await batch.fetchval("SELECT now()")  # the instant its events would be stamped with
        # a boundary recorded after the batch began (moving it for real would wait for this transaction to end,
        # as CREATE INDEX CONCURRENTLY waits for every older one; the batch's statement fails before any index)
        await mover.execute("UPDATE event_key_tiers SET settled_before = clock_timestamp()")
        with pytest.raises(key_tiers.StartedBeforeBoundary) as raised:
            await store_events(batch, [incoming(_usage("late"))])
        assert not is_refusal(raised.value)  # the worker retries the batch (services/metering/isolation.py)
        await transaction.rollback()
        await mover.execute("UPDATE event_key_tiers SET settled_before = $1", boundary)
        assert await _store(batch, [_usage("late")]) == (["late"], [])
    finally:
        await batch.close()
        await mover.close()


def test_a_batch_begun_before_the_boundary_it_reads_is_retried_in_a_new_transaction():
    _scratch(_begun_before)


def _cli(*args: str) -> subprocess.CompletedProcess:
    # a process of its own, as an operator runs it (and no engine shared with the tests' event loops)
    return subprocess.run([sys.executable, "-m", "services.cli", "event-keys", *args], capture_output=True, text=True,
                          timeout=120)


def test_the_cli_shows_the_key_and_refuses_a_bad_or_future_day(database):
    shown = _cli()
    assert shown.returncode == 0, shown.stderr
    assert "settled before: none (one index)" in shown.stdout and "uq_events_key\t" in shown.stdout
    bad = _cli("--settle-before", "2058-13-01")
    assert bad.returncode != 0 and "--settle-before" in bad.stderr
    future = _cli("--settle-before", "2099-01-01")  # refused before any index is built
    assert future.returncode == 1 and "in the future" in future.stderr
