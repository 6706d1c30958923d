"""The event store's key in two tiers: events received before a boundary are *settled*, the rest *recent*.

Every event is unique per (source, id) over all of history, by a unique index on its key
``govmeter_event_key(source, event_id)`` (migration 0018), kept in ``event_keys`` beside the month-partitioned event
store (migration 0021). Provider ids are random, so each new key lands on a random leaf of that index: the whole
index is the worker's working set, and after every checkpoint each leaf it touches is written whole to the WAL once.
At five years that index has five times the leaves of year one, and the worker paid for it (docs/partitioning.md).
Split at a boundary ``B`` (``event_key_tiers.settled_before``), the key is two partial unique indexes:

- ``uq_events_key_settled_…`` over the events received before ``B``: read, never written (an event is stamped
  ``received_at`` when its transaction starts, so new events fall after any boundary in the past);
- ``uq_events_key_recent_…`` over the events received since ``B``: what the worker writes, as large as the months
  since the last boundary, whatever the years before it.

The worker stores an event only if its key is not among the settled ones (a read of that index) and lets the
recent index refuse it otherwise (``ON CONFLICT DO NOTHING`` with every unique index as arbiter); a duplicate's
stored payload is looked up in both. With no boundary (NULL, as migrated) the key is the one index
``uq_events_key`` over everything.

Moving the boundary (``govmeter event-keys --settle-before``, once a year, as the table's owner) builds the new pair
beside the old one (``CREATE INDEX CONCURRENTLY``: ingestion goes on), records the new boundary while holding the
attribution lock exclusively (every batch holds it shared from before it reads the boundary until it commits: a
batch sees one boundary and both of its indexes exist until it ends), then drops the old pair. Whichever pair a
batch uses covers every stored event, and both pairs are maintained while both exist."""

from __future__ import annotations

from datetime import UTC, datetime

from services.common.locks import lock_attribution

TIERS = "event_key_tiers"
WHOLE = "uq_events_key"  # the one index, no boundary (migration 0018)
_PREFIX = WHOLE + "_"
KEYS = "event_keys"  # the key of every stored event (migration 0021): events itself is partitioned by month
KEY = "govmeter_event_key({0}.source, {0}.event_id)"


class StartedBeforeBoundary(RuntimeError):
    """A batch whose transaction began before the boundary it read: its events would be stamped before the
    boundary, into the settled index, and checked against neither the recent index nor a recent duplicate being
    stored concurrently. Not a refusal of the events (services/metering/isolation.py): the batch is retried in a
    new transaction, which begins after the boundary."""


async def settled_before(conn) -> datetime | None:
    """The boundary, or None while the key is one index. A writer reads it after taking the attribution lock
    (shared) and keeps that lock until it commits; its transaction must have begun at or after the boundary (the
    instant its events are stamped with), else ``StartedBeforeBoundary``."""
    boundary, started = await conn.fetchrow(f"SELECT settled_before, now() FROM {TIERS}")
    if boundary is not None and started < boundary:
        raise StartedBeforeBoundary(f"transaction began at {started.isoformat()}, before the event key's boundary "
                                    f"{boundary.isoformat()}")
    return boundary


def _literal(boundary: datetime) -> str:
    # a constant, not a parameter: the planner matches it against the partial indexes' predicates
    return f"'{boundary.astimezone(UTC).isoformat()}'::timestamptz"


def unsettled(boundary: datetime | None, staged: str) -> str:
    """A WHERE clause keeping the staged rows (alias ``staged``) whose key no settled event holds."""
    if boundary is None:
        return ""
    return (f"WHERE NOT EXISTS (SELECT FROM {KEYS} e WHERE e.key = {KEY.format(staged)} "
            f"AND e.received_at < {_literal(boundary)})")


def stored_by_key(boundary: datetime | None, columns: str, keys: str) -> str:
    """A query of ``columns`` of the stored keys (alias ``e``: ``key``, ``received_at``, ``payload_digest``) and of
    the rows of ``keys`` (a FROM item aliased ``k`` with columns ``source``, ``event_id``) that they match: one
    probe of each tier's index a key."""
    if boundary is None:
        return f"SELECT {columns} FROM {keys} JOIN {KEYS} e ON e.key = {KEY.format('k')}"
    tiers = [f"SELECT {columns} FROM {KEYS} e WHERE e.key = {KEY.format('k')} "
             f"AND e.received_at {op} {_literal(boundary)}" for op in ("<", ">=")]
    return f"SELECT t.* FROM {keys} CROSS JOIN LATERAL ({tiers[0]} UNION ALL {tiers[1]}) AS t"


def index_names(boundary: datetime | None) -> tuple[str, ...]:
    """The key's indexes at ``boundary``: settled and recent, or the one index."""
    if boundary is None:
        return (WHOLE,)
    stamp = boundary.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return (f"{_PREFIX}settled_{stamp}", f"{_PREFIX}recent_{stamp}")


def _index_statements(boundary: datetime | None) -> list[tuple[str, str]]:
    if boundary is None:
        return [(WHOLE, f"CREATE UNIQUE INDEX CONCURRENTLY {WHOLE} ON {KEYS} (key)")]
    return [(name, f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON {KEYS} (key) "
                   f"WHERE received_at {op} {_literal(boundary)}")
            for name, op in zip(index_names(boundary), ("<", ">="))]


async def key_indexes(conn) -> list[tuple[str, bool, int]]:
    """The event store's key indexes: name, whether valid, size in bytes."""
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, i.indisvalid AS valid, pg_relation_size(c.oid) AS size
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'public.event_keys'::regclass AND (c.relname = $1 OR c.relname LIKE $2)
        ORDER BY c.relname
        """, WHOLE, _PREFIX.replace("_", "\\_") + "%")
    return [(r["name"], r["valid"], r["size"]) for r in rows]


async def settle_event_keys(conn, boundary: datetime | None) -> list[str]:
    """Move the boundary to ``boundary`` (None: back to the one index); returns the key's indexes afterwards. Runs
    outside a transaction (``CREATE INDEX CONCURRENTLY``), as the owner of ``event_keys``. A boundary in the future
    is refused: new events would be written to the settled index, which is what the tiers keep from growing."""
    if boundary is not None and boundary > await conn.fetchval("SELECT now()"):
        raise ValueError(f"settle-before: {boundary.isoformat()} is in the future")
    wanted = index_names(boundary)
    existing = {name: valid for name, valid, _ in await key_indexes(conn)}
    for name, create in _index_statements(boundary):
        if name in existing and not existing[name]:  # left invalid by an interrupted build
            await conn.execute(f"DROP INDEX CONCURRENTLY {name}")
            del existing[name]
        if name not in existing:
            await conn.execute(create)
    async with conn.transaction():
        # every batch reads the boundary under this lock, shared, and holds it until it commits: once this commits,
        # no batch still uses the old boundary, so its indexes may go
        await lock_attribution(conn, exclusive=True)
        await conn.execute(f"UPDATE {TIERS} SET settled_before = $1", boundary)
    for name in existing:
        if name not in wanted:
            await conn.execute(f"DROP INDEX CONCURRENTLY {name}")
    return [name for name, _, _ in await key_indexes(conn)]
