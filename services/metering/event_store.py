"""The event store in PostgreSQL: events counted once per (source, id), conflicting duplicates and dead letters.

Every function here runs inside a transaction the caller owns, on the asyncpg connection under SQLAlchemy's,
so an event, its key (``event_keys``) and its effect on the rollups commit together or not at all."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from services.metering.key_tiers import KEY, KEYS, settled_before, stored_by_key, unsettled
from services.projection.staging import stage


class IncomingEvent(NamedTuple):
    event: dict  # validated (schemas.events), datetimes and decimals typed
    payload: bytes  # canonical JSON as stored
    key: tuple[str, str]  # (source, id): counted once
    instants: tuple[str, str | None, str | None]  # time, data.start, data.end as ISO 8601 text, for the COPY


class InstantText:
    """ISO 8601 text of validated instants, remembered by their spelling in the input. asyncpg's binary
    timestamptz encoding costs several times PostgreSQL's parsing of the text (docs/benchmark.md), three instants
    an event, and a batch repeats the same few interval bounds thousands of times. One spelling always validates to
    one instant, so the text is the validated instant's own ``isoformat()``, never the input's spelling."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    def __call__(self, spelling: Any, instant: datetime | None) -> str | None:
        if instant is None:
            return None
        if type(spelling) is not str:
            return instant.isoformat()
        text = self._texts.get(spelling)
        if text is None:
            text = self._texts[spelling] = instant.isoformat()
        return text


def incoming_event(event: dict, raw: dict, payload: bytes, instant_text: InstantText) -> IncomingEvent:
    data, raw_data = event["data"], raw["data"]
    instants = (instant_text(raw["time"], event["time"]), instant_text(raw_data.get("start"), data.get("start")),
                instant_text(raw_data.get("end"), data.get("end")))
    return IncomingEvent(event, payload, (event["source"], event["id"]), instants)


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    dedupe_key: str
    source: str | None
    event_id: str | None
    reason: str
    errors: list[str]
    payload: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


def storable_text(text: str | None) -> str | None:
    """Text as PostgreSQL can hold it: NUL (refused by text and jsonb) spelled out. A dead letter must always be
    storable, whatever it carries, or filing it would fail like the input did."""
    return None if text is None else text.replace("\x00", "\\u0000")


async def insert_dead_letters(conn, rows: list[DeadLetterRow]) -> int:
    if not rows:
        return 0
    result = await conn.fetch(
        """
        INSERT INTO dead_letters (dedupe_key, source, event_id, reason, errors, payload, topic, partition, "offset")
        SELECT k, s, i, r, e::jsonb, p, t, pa, o
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                    $8::int[], $9::bigint[]) AS d(k, s, i, r, e, p, t, pa, o)
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING id
        """,
        [storable_text(r.dedupe_key) for r in rows],
        [storable_text(r.source) for r in rows],
        [storable_text(r.event_id) for r in rows],
        [storable_text(r.reason) for r in rows],
        [orjson.dumps([storable_text(e) for e in r.errors]).decode() for r in rows],
        [storable_text(r.payload) for r in rows],
        [r.topic for r in rows],
        [r.partition for r in rows],
        [r.offset for r in rows],
    )
    return len(result)


async def store_events(conn, incoming: list[IncomingEvent]) -> tuple[list[IncomingEvent], list[DeadLetterRow]]:
    """Insert events once per (source, id). Returns the ones that are new, and dead letters for conflicting
    duplicates (same key, different payload). Exact duplicates are simply not new. The caller holds the
    attribution lock (services.common.locks), shared at least, while the key's tiers are read (key_tiers.py)."""
    unique: dict[tuple[str, str], IncomingEvent] = {}
    conflicts: list[DeadLetterRow] = []
    for item in incoming:
        first = unique.setdefault(item.key, item)
        if first is not item and first.payload != item.payload:
            conflicts.append(_conflict(item))
    if not unique:
        return [], conflicts
    # One lock order for concurrent batches, so they do not deadlock: staged in key order, and the staging table
    # gives its rows back in that order (sorting there would spill the payloads to disk). Were the order ever
    # lost, the worst case is a detected deadlock, and the worker retries the batch.
    items = sorted(unique.values(), key=lambda i: i.key)
    rows = []
    for item in items:
        event = item.event
        data = event["data"]
        quantity = data.get("quantity")
        time, start, end = item.instants
        rows.append((event["source"], event["id"], event["type"], event["subject"], time, data.get("meter"),
                     None if quantity is None else str(quantity), start, end, item.payload))
    await stage(conn, "incoming_events", rows)
    boundary = await settled_before(conn)  # the caller holds the attribution lock: one boundary to commit
    # The key first: a key settled before the boundary is looked up (a read); a recent one is refused by its
    # unique index. Every unique index is an arbiter (no conflict target): while the boundary moves, the old and
    # new pairs both hold. Then the events whose keys were new, into the current month's partition. Both read
    # straight from the staging table and empty it afterwards: a DELETE … RETURNING CTE would materialise every
    # payload in a tuplestore, which spilled to temporary files (~0.5 kB an event written and read back).
    inserted = await conn.fetch(
        f"""
        WITH new_keys AS (
            INSERT INTO {KEYS} (key, payload_digest)
            SELECT {KEY.format("s")}, sha256(s.payload)
            FROM incoming_events AS s
            {unsettled(boundary, "s")}
            ON CONFLICT DO NOTHING
            RETURNING key
        )
        INSERT INTO events (source, event_id, type, subject, event_time, meter, quantity, start_at, end_at, payload)
        SELECT source, event_id, type, subject, event_time::timestamptz, meter, quantity::numeric,
               start_at::timestamptz, end_at::timestamptz, payload
        FROM incoming_events AS s
        WHERE {KEY.format("s")} IN (SELECT key FROM new_keys)
        RETURNING source, event_id
        """
    )
    await conn.execute("DELETE FROM incoming_events")  # a second batch in this transaction starts empty
    if len(inserted) == len(items):
        return items, conflicts
    new_keys = {(r["source"], r["event_id"]) for r in inserted}
    new = [item for item in items if item.key in new_keys]
    seen_before = [item for item in items if item.key not in new_keys]
    stored = await conn.fetch(
        stored_by_key(boundary, "k.source, k.event_id, e.payload_digest",
                      "unnest($1::text[], $2::text[]) AS k(source, event_id)"),
        [i.key[0] for i in seen_before],
        [i.key[1] for i in seen_before],
    )
    # The stored payload's SHA-256 against the newcomer's. Were a key ever shared by two pairs, the newcomer's
    # payload (which holds its own source and id) differs: a dead letter, not a silent drop.
    stored_digest = {(r["source"], r["event_id"]): bytes(r["payload_digest"]) for r in stored}
    conflicts.extend(_conflict(item) for item in seen_before
                     if stored_digest.get(item.key) != hashlib.sha256(item.payload).digest())
    return new, conflicts


def _conflict(item: IncomingEvent) -> DeadLetterRow:
    source, event_id = item.key
    digest = hashlib.sha256(item.payload).hexdigest()
    return DeadLetterRow(
        dedupe_key=f"conflict:{source}:{event_id}:{digest}",
        source=source,
        event_id=event_id,
        reason="conflicting duplicate",
        errors=[f"id: ({source}, {event_id}) was already counted with a different payload"],
        payload=item.payload.decode(),
    )
