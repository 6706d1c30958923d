"""The event store partitioned by month of arrival (migration 0021): usage lands in the current month's partition
and lifecycle events in their own, an arrival in a month without a partition waits in the default and moves in
when it is made, and a month detached into the archive still counts every event once (a redelivery is a duplicate,
a changed payload a dead letter), stays readable by the services' role and is refused to it to detach. The
migration keeps events, keys and tiers both ways."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from alembic import command

from services.common.db import asyncpg_dsn, drop_database, ensure_database
from services.common.locks import lock_attribution
from services.common.migrate import alembic_config
from services.common.periods import Month
from services.metering import key_tiers
from services.metering.event_store import store_events
from services.projection.partitions import EVENTS, detach_month, ensure_month_partitions, stored_event_tables
from tests.integration.support import incoming, lifecycle_event, scratch_database_url, usage_event

pytestmark = pytest.mark.usefixtures("database")
YEAR = 2035  # months of arrival nothing else writes
START = datetime(2034, 6, 1, tzinfo=UTC)


@pytest.fixture
async def source(settings):
    """The test's own event source; its events and keys are removed afterwards (as the owner: the services'
    role may only append), so that replay's tests never meet events stored without their projections."""
    name = f"//test/partitions/{uuid.uuid4().hex[:8]}"
    yield name
    owner = await asyncpg.connect(asyncpg_dsn(settings.migration_database_url))
    try:
        await owner.execute("DELETE FROM event_keys WHERE key IN (SELECT govmeter_event_key(source, event_id) "
                            "FROM events WHERE source = $1)", name)
        await owner.execute("DELETE FROM events WHERE source = $1", name)
        await owner.execute("DELETE FROM dead_letters WHERE source = $1", name)
    finally:
        await owner.close()


async def _store(conn, raws: list[dict]) -> tuple[list[str], list[str]]:
    async with conn.transaction():
        await lock_attribution(conn, exclusive=False)  # as the worker's batches
        new, dead = await store_events(conn, [incoming(raw) for raw in raws])
    return sorted(item.key[1] for item in new), [row.reason for row in dead]


async def _placed(conn, source: str) -> dict[str, str]:
    return {r["event_id"]: r["part"] for r in await conn.fetch(
        "SELECT event_id, tableoid::regclass::text AS part FROM events WHERE source = $1", source)}


async def test_usage_lands_in_this_months_partition_and_lifecycle_events_in_their_own(settings, source):
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        usage = usage_event("vm-part-1", "compute.vcpu", "2", START, event_id="u1", source=source)
        lifecycle = dict(lifecycle_event("vm-part-1", "activated", "d", START, event_id="l1"), source=source)
        assert await _store(conn, [usage, lifecycle]) == (["l1", "u1"], [])
        now = await conn.fetchval("SELECT now()")
        assert await _placed(conn, source) == {"u1": EVENTS.partition(Month.of(now)), "l1": "events_lifecycle"}
        assert await conn.fetchval("SELECT count(*) FROM event_keys WHERE key = govmeter_event_key($1, 'u1')",
                                   source) == 1
    finally:
        await conn.close()


async def _arrive(conn, source: str, event_id: str, received_at: datetime, quantity: str = "1") -> dict:
    """An event received at ``received_at`` (a month long past or ahead), stored as the worker stores one."""
    raw = usage_event("vm-part-2", "compute.vcpu", quantity, START, event_id=event_id, source=source)
    item = incoming(raw)
    await conn.execute(
        "WITH k AS (INSERT INTO event_keys (key, received_at, payload_digest) "
        "VALUES (govmeter_event_key($1, $2), $4, sha256($3))) "
        "INSERT INTO events (source, event_id, type, subject, event_time, meter, quantity, start_at, end_at, "
        "payload, received_at) VALUES ($1, $2, 'gov.cloud.usage.v1', 'vm-part-2', $5, 'compute.vcpu', $6, $5, "
        "$5, $3, $4)", source, event_id, item.payload, received_at, START, quantity)
    return raw


async def test_an_arrival_without_its_months_partition_waits_in_the_default_and_moves_in(settings, source):
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        march = Month(YEAR, 3)
        await _arrive(conn, source, "early", march.start)  # local midnight of 1 March
        await _arrive(conn, source, "late", march.end.replace(microsecond=0) - (march.end - march.start) / 31 / 24)
        assert set((await _placed(conn, source)).values()) == {"events_default"}
        assert await ensure_month_partitions(conn, march, march) == [f"usage_hourly_{YEAR}_03", f"events_{YEAR}_03"]
        assert await _placed(conn, source) == {"early": f"events_{YEAR}_03", "late": f"events_{YEAR}_03"}
    finally:
        await conn.close()


async def test_a_detached_month_still_counts_each_event_once_and_stays_readable(settings, source):
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    owner = await asyncpg.connect(asyncpg_dsn(settings.migration_database_url))
    may = Month(YEAR, 5)
    archived = f"archive.events_{YEAR}_05"
    try:
        await ensure_month_partitions(conn, may, may)
        kept = await _arrive(conn, source, "kept", may.start)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the services' role cannot detach
            await detach_month(conn, Month(YEAR, 5), table=EVENTS)
        assert await detach_month(owner, Month(YEAR, 5), table=EVENTS) == archived
        assert await _placed(conn, source) == {}  # no longer in the live store
        assert archived in await stored_event_tables(conn)  # … but still read by replay, as the services' role
        assert await conn.fetchval(f"SELECT event_id FROM {archived} WHERE source = $1", source) == "kept"

        # its key is still the store's: a redelivery is a duplicate, a changed payload a dead letter
        changed = orjson.loads(orjson.dumps(kept))
        changed["data"]["quantity"] = "9"
        assert await _store(conn, [kept]) == ([], [])
        assert await _store(conn, [changed]) == ([], ["conflicting duplicate"])
        assert await _placed(conn, source) == {}
    finally:
        await owner.execute(f"DROP TABLE IF EXISTS {archived}")
        await owner.close()
        await conn.close()


def test_the_cli_detaches_the_event_stores_month_only_when_closed(capsys):
    from services.cli import main

    assert main(["partitions", "--detach", f"{YEAR}-11", "--events"]) == 1
    assert "not closed" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--events"):
        main(["partitions", "--events"])


def test_the_migration_keeps_events_keys_and_tiers_both_ways():
    url = scratch_database_url()
    try:
        asyncio.run(ensure_database(url))
        command.upgrade(alembic_config(url), "0020_event_key_tiers")
        boundary = asyncio.run(_store_before(asyncpg_dsn(url)))
        command.upgrade(alembic_config(url), "0021_partition_events")
        asyncio.run(_check_partitioned(asyncpg_dsn(url), boundary))
        command.downgrade(alembic_config(url), "0020_event_key_tiers")
        asyncio.run(_check_unpartitioned(asyncpg_dsn(url), boundary))
    finally:
        asyncio.run(drop_database(url))


ROWS = [("a", "gov.cloud.usage.v1", datetime(2025, 1, 31, 17, tzinfo=UTC)),  # 1 February local
        ("b", "gov.cloud.usage.v1", datetime(2025, 1, 31, 15, tzinfo=UTC)),  # 31 January local
        ("c", "gov.cloud.resource.v1", datetime(2025, 1, 10, tzinfo=UTC))]


async def _store_before(dsn: str) -> datetime:
    """Three events as migration 0020 stored them, the key split at 1 February local."""
    conn = await asyncpg.connect(dsn)
    try:
        for event_id, kind, received in ROWS:
            await conn.execute("INSERT INTO events (source, event_id, type, subject, event_time, payload, "
                               "received_at) VALUES ('s', $1, $2, 'vm', $3, $4, $3)", event_id, kind, received,
                               f'{{"id": "{event_id}"}}'.encode())
        boundary = Month(2025, 2).start
        for name, op in zip(key_tiers.index_names(boundary), ("<", ">=")):
            await conn.execute(f"CREATE UNIQUE INDEX {name} ON events (govmeter_event_key(source, event_id)) "
                               f"WHERE received_at {op} '{boundary.isoformat()}'::timestamptz")
        await conn.execute("DROP INDEX uq_events_key")
        await conn.execute("UPDATE event_key_tiers SET settled_before = $1", boundary)
        return boundary
    finally:
        await conn.close()


async def _check_partitioned(dsn: str, boundary: datetime) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        assert {r["event_id"]: r["part"] for r in await conn.fetch(
            "SELECT event_id, tableoid::regclass::text AS part FROM events")} == {
            "a": "events_2025_02", "b": "events_2025_01", "c": "events_lifecycle"}
        assert await conn.fetchval("SELECT count(*) FROM event_keys k JOIN events e ON k.key = "
                                   "govmeter_event_key(e.source, e.event_id) AND k.received_at = e.received_at "
                                   "AND k.payload_digest = sha256(e.payload)") == 3
        assert sorted(name for name, valid, _ in await key_tiers.key_indexes(conn) if valid) == sorted(
            key_tiers.index_names(boundary))
        # each tier's index holds its keys: b's settled, a's recent
        for event_id, received in (("b", datetime(2025, 1, 5, tzinfo=UTC)), ("a", datetime(2025, 3, 5, tzinfo=UTC))):
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute("INSERT INTO event_keys (key, received_at, payload_digest) "
                                   "VALUES (govmeter_event_key('s', $1), $2, '')", event_id, received)
    finally:
        await conn.close()


async def _check_unpartitioned(dsn: str, boundary: datetime) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass") == 0
        assert sorted(r[0] for r in await conn.fetch("SELECT event_id FROM events")) == ["a", "b", "c"]
        assert await conn.fetchval("SELECT to_regclass('event_keys')") is None
        names = {r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'events'")}
        assert set(key_tiers.index_names(boundary)) <= names
    finally:
        await conn.close()
