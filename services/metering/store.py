"""The metering write side in PostgreSQL: event store with dedupe, ownership projection, hourly and daily rollups.

Every function here runs inside a transaction the caller owns, on the asyncpg connection under SQLAlchemy's,
so an event, its dedupe key and its effect on the rollups commit together or not at all."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, NamedTuple

import orjson

from schemas.events import RESOURCE_TYPE, USAGE_TYPE, resource_data_adapter
from services.common.periods import LocalCalendar, floor_hour
from services.metering.domain.attribution import LifecycleChange, Ownership, ownership_intervals
from services.metering.domain.rating import (
    MeteredUsage,
    RateCardPrices,
    RollupDelta,
    RollupKey,
    card_prices,
    rate_usage,
)

# Attribution and prices are shared state: usage batches hold this advisory lock shared, lifecycle events and
# rate cards hold it exclusively, so a batch never rates with an owner or price another transaction is changing.
ATTRIBUTION_LOCK = 0x676F_766D  # "govm"


async def lock_attribution(conn, exclusive: bool) -> None:
    if exclusive:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ATTRIBUTION_LOCK)
    else:
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", ATTRIBUTION_LOCK)


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


# Batches reach PostgreSQL by binary COPY into session-local staging tables: asyncpg encodes COPY rows without
# the per-element checks of array parameters (docs/benchmark.md). Numbers travel as text (exact) and are cast.
# A staged hourly delta: the usage_hourly key, the local day the coarse rollups group by, and the sums. The worker
# stages a batch's in a session table, a rebuild (``rebuild.py``) millions in an UNLOGGED one: the same rows.
HOURLY_DELTA_COLUMNS = ("hour timestamptz, day date, resource_id text, meter text, department_id text, system text, "
                        "rate_card_id int, quantity text, amount text, unpriced_quantity text")
_STAGING_TABLES = {
    "incoming_events": "source text, event_id text, type text, subject text, event_time text, meter text, "
                       "quantity text, start_at text, end_at text, payload bytea",
    "hourly_deltas": HOURLY_DELTA_COLUMNS,
}


def hourly_delta_rows(deltas: dict[RollupKey, RollupDelta], calendar: LocalCalendar) -> list[tuple]:
    """Hourly deltas as staged rows (``HOURLY_DELTA_COLUMNS``). Decimals travel as their exact text (cheaper to
    send than binary numeric; PostgreSQL parses them back to the same numbers)."""
    return [(hour, calendar(hour)[0], resource_id, meter, department, system, card_id, str(delta.quantity),
             str(delta.amount), str(delta.unpriced_quantity))
            for (hour, resource_id, meter, department, system, card_id), delta in deltas.items()]


async def stage(conn, table: str, rows: list[tuple]) -> None:
    """COPY rows into a staging table; the statement that reads it empties it (ON COMMIT DELETE ROWS alone would
    leave the rows for a second use in the same transaction)."""
    await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({_STAGING_TABLES[table]}) ON COMMIT DELETE ROWS")
    await conn.copy_records_to_table(table, records=rows)


async def store_events(conn, incoming: list[IncomingEvent]) -> tuple[list[IncomingEvent], list[DeadLetterRow]]:
    """Insert events once per (source, id). Returns the ones that are new, and dead letters for conflicting
    duplicates (same key, different payload). Exact duplicates are simply not new."""
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
    # Read straight from the staging table and empty it afterwards: a DELETE … RETURNING CTE would materialise
    # every payload in a tuplestore, which spilled to temporary files (~0.5 kB an event written and read back).
    inserted = await conn.fetch(
        """
        INSERT INTO events (source, event_id, type, subject, event_time, meter, quantity, start_at, end_at, payload)
        SELECT source, event_id, type, subject, event_time::timestamptz, meter, quantity::numeric,
               start_at::timestamptz, end_at::timestamptz, payload
        FROM incoming_events
        ON CONFLICT (source, event_id) DO NOTHING
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
        """
        SELECT e.source, e.event_id, e.payload FROM events e
        JOIN unnest($1::text[], $2::text[]) AS k(s, i) ON e.source = k.s AND e.event_id = k.i
        """,
        [i.key[0] for i in seen_before],
        [i.key[1] for i in seen_before],
    )
    stored_payload = {(r["source"], r["event_id"]): bytes(r["payload"]) for r in stored}
    conflicts.extend(_conflict(item) for item in seen_before if stored_payload.get(item.key) != item.payload)
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


# --- ownership ------------------------------------------------------------------------------------------------


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


async def load_rate_cards(conn) -> list[RateCardPrices]:
    rows = await conn.fetch("SELECT id, version, effective_from, prices FROM rate_cards ORDER BY effective_from, id")
    return [card_prices(r["id"], r["version"], r["effective_from"], r["prices"]) for r in rows]


async def projection_versions(conn) -> tuple[int, int]:
    row = await conn.fetchrow("SELECT ownership_version, rate_card_version FROM projection_state WHERE id = 1")
    return row["ownership_version"], row["rate_card_version"]


# --- rollups ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoarseRollup:
    """A rollup coarser than usage_hourly, derived from hourly deltas; finance queries read these."""

    table: str
    columns: tuple[str, ...]  # its key


COARSE_ROLLUPS = (
    # per local day with information system: reports per department and system
    CoarseRollup("usage_daily", ("day", "department_id", "system", "meter")),
    # per local day without system: a department's daily spend by meter is a plain index range
    CoarseRollup("usage_department_daily", ("day", "department_id", "meter")),
    # per local month: a year of spend across all departments is a few thousand rows
    CoarseRollup("usage_monthly", ("month", "department_id", "meter")),
)

# Coarse key columns from a row of local days (``days`` below): days and months are Asia/Shanghai's.
LOCAL_MONTH_OF_DAY = "date_trunc('month', day)::date"  # a local day's month, as its first day
_DERIVED = {"day": "day", "month": LOCAL_MONTH_OF_DAY, "department_id": "department_id", "system": "system",
            "meter": "meter"}
_LOCAL_DAY = "(hour AT TIME ZONE 'Asia/Shanghai')::date"
HOURLY_KEY = ("resource_id", "hour", "meter", "department_id", "system", "rate_card_id")  # its unique index's order
SUMS = ("quantity", "amount", "unpriced_quantity")
_HOURLY_KEY = ", ".join(HOURLY_KEY)
_HOURLY_DELTAS = """d AS (
    DELETE FROM hourly_deltas RETURNING hour, resource_id, meter, department_id, system, rate_card_id,
        quantity::numeric AS quantity, amount::numeric AS amount, unpriced_quantity::numeric AS unpriced_quantity,
        day)"""
_REMOVED = """r AS (SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                                      $6::numeric[], $7::numeric[])
                   AS r(hour, meter, department_id, system, quantity, amount, unpriced_quantity))"""


def _added(table: str) -> str:
    return ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in SUMS)


def _rollup_statement(with_removed: bool) -> str:
    """One statement: the hourly deltas into usage_hourly, and summed by PostgreSQL into every coarse rollup.
    The batch is summed per local day once (``days``); each coarse rollup sums those few rows further. Each
    upsert runs in its key order, the same in every transaction, so concurrent batches cannot deadlock."""
    ctes = [_HOURLY_DELTAS, f"""h AS (
        INSERT INTO usage_hourly (hour, resource_id, meter, department_id, system, rate_card_id, {", ".join(SUMS)})
        SELECT hour, resource_id, meter, department_id, system, rate_card_id, {", ".join(SUMS)}
        FROM d ORDER BY {_HOURLY_KEY}
        ON CONFLICT ({_HOURLY_KEY}) DO UPDATE SET {_added("usage_hourly")})"""]
    source = "d"
    if with_removed:  # rows a rebuild took out of usage_hourly leave the coarse rollups too
        ctes += [_REMOVED, f"""c AS (
            SELECT day, meter, department_id, system, quantity, amount, unpriced_quantity FROM d
            UNION ALL SELECT {_LOCAL_DAY}, meter, department_id, system, -quantity, -amount, -unpriced_quantity
            FROM r)"""]
        source = "c"
    ctes.append(f"""days AS (
        SELECT day, department_id, system, meter, {", ".join(f"sum({c}) AS {c}" for c in SUMS)}
        FROM {source} GROUP BY 1, 2, 3, 4)""")
    for i, rollup in enumerate(COARSE_ROLLUPS):
        names = ", ".join(rollup.columns)
        positions = ", ".join(str(k + 1) for k in range(len(rollup.columns)))
        ctes.append(f"""c{i} AS (
            INSERT INTO {rollup.table} ({names}, {", ".join(SUMS)})
            SELECT {", ".join(_DERIVED[c] for c in rollup.columns)}, {", ".join(f"sum({c})" for c in SUMS)}
            FROM days GROUP BY {positions} ORDER BY {positions}
            ON CONFLICT ({names}) DO UPDATE SET {_added(rollup.table)})""")
    return "WITH " + ",\n".join(ctes) + "\nSELECT 1"


_ROLLUP_SQL = {False: _rollup_statement(False), True: _rollup_statement(True)}


def _delete_empty_statement(rollup: CoarseRollup) -> str:
    names = ", ".join(rollup.columns)
    match = " AND ".join(f"t.{c} IS NOT DISTINCT FROM k.{c}" for c in rollup.columns)
    return f"""
        DELETE FROM {rollup.table} t
        USING (SELECT DISTINCT {", ".join(f"{_DERIVED[c]} AS {c}" for c in rollup.columns)}
               FROM (SELECT {_LOCAL_DAY} AS day, meter, department_id, system
                     FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[])
                          AS r(hour, meter, department_id, system)) AS days) AS k({names})
        WHERE {match} AND t.quantity = 0 AND t.amount = 0 AND t.unpriced_quantity = 0"""


async def apply_rollup_deltas(conn, deltas: dict[RollupKey, RollupDelta], removed: list | None = None) -> None:
    """Add hourly deltas to usage_hourly and to every coarser rollup. ``removed``: usage_hourly rows a rebuild
    has just deleted, taken back out of the coarser rollups (whose rows that become empty are deleted)."""
    if not deltas and not removed:
        return
    await stage(conn, "hourly_deltas", hourly_delta_rows(deltas, LocalCalendar()))
    if not removed:
        await conn.execute(_ROLLUP_SQL[False])
        return
    taken = [[r[c] for r in removed] for c in ("hour", "meter", "department_id", "system", *SUMS)]
    await conn.execute(_ROLLUP_SQL[True], *taken)
    for rollup in COARSE_ROLLUPS:  # a rebuild may have emptied a row: remove it rather than show zeros
        await conn.execute(_delete_empty_statement(rollup), *taken[:4])


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


async def reprice_from(conn, effective_from: datetime) -> int:
    """After a rate card is added: re-rate all stored usage from the hour holding its effective instant.
    Returns how many resources were re-rated. The caller holds the attribution lock exclusively."""
    hour = floor_hour(effective_from)
    await conn.execute("UPDATE projection_state SET rate_card_version = rate_card_version + 1 WHERE id = 1")
    resource_ids = [
        r["resource_id"] for r in await conn.fetch("SELECT DISTINCT resource_id FROM usage_hourly WHERE hour >= $1", hour)
    ]
    if resource_ids:
        owners = await load_ownership(conn, resource_ids)
        cards = await load_rate_cards(conn)
        await rebuild_rollups(conn, {r: hour for r in resource_ids}, owners, cards)
    return len(resource_ids)
