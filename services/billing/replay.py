"""``govmeter replay``: rebuild every projection from the event store into a fresh schema and compare.

The projections (resource_intervals, usage_hourly, usage_daily, and whatever else the metering pipeline
writes) are rebuilt by the pipeline's own code, fed the stored events, on connections whose search_path is a
new schema ``replay_<id>``: its tables are empty copies of the live ones (``LIKE ... INCLUDING ALL``); billing's
tables and departments appear there as views of the live ones (read only by bill computation). Rate cards are
added as they were, each re-pricing what is stored (``reprice_from``).

History is replayed in the order of the closes: first what existed at the first close (events received and
rate cards created by then, see ``ClosedPeriod.saw``), then that period's final bills are recomputed from the
replayed rollups and must be byte for byte the stored ones; then the next close, and so on; then the rest.
Finally, with ingestion paused (the attribution lock held exclusively, briefly), the rebuilt projections are
compared row for row with the live ones, and every open period's draft bills with the live drafts."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.billing.bills import ClosedPeriod, closed_periods, open_periods, period_bills, snapshot
from services.billing.domain.render import draft_bytes, issue
from schemas.events import RESOURCE_TYPE
from services.common.db import raw_connection, raw_transaction
from services.metering.pipeline import KafkaRecord, MeteringPipeline
from services.metering.store import lock_attribution, reprice_from

log = logging.getLogger(__name__)

# Read by bill computation through views; the pipeline never writes them.
SHARED = ("departments", "billing_periods", "bills", "adjustments", "usage_baselines", "ledger_entries", "budgets",
          "budget_alerts")
SKIPPED = ("alembic_version",)
COMPARED = ("resource_intervals", "usage_hourly", "usage_daily", "utilization_hourly")
ROLLUPS = ("usage_hourly", "usage_daily")  # a row of zeros is the same as no row
CHUNK = 5000
CONCURRENCY = 3


@dataclass
class ReplayReport:
    schema: str
    events: int = 0
    rate_cards: int = 0
    seconds: float = 0.0
    final_bills_checked: int = 0
    drafts_checked: int = 0
    tables_compared: dict[str, int] = field(default_factory=dict)  # table → live rows compared
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _segment(closes: list[ClosedPeriod], k: int, column: str, params: list) -> str:
    """SQL condition: rows stamped (``column``) after the closes before k and, unless k is past the last
    close, seen by close k."""
    def param(value) -> str:
        params.append(value)
        return f"${len(params)}"

    clauses = [f"({column} > {param(c.closed_at)}::timestamptz OR {column} = ANY({param(list(c.open_at_close))}"
               f"::timestamptz[]))" for c in closes[:k]]
    if k < len(closes):
        close = closes[k]
        clauses.append(f"{column} <= {param(close.closed_at)}::timestamptz AND NOT {column} = "
                       f"ANY({param(list(close.open_at_close))}::timestamptz[])")
    return " AND ".join(clauses) or "true"


async def replay(engine: AsyncEngine, url: str, keep: bool = False) -> ReplayReport:
    report = ReplayReport(schema=f"replay_{uuid.uuid4().hex[:10]}")
    started = time.perf_counter()
    async with raw_connection(engine) as conn:
        await _create_schema(conn, report.schema)
    replay_engine = create_async_engine(url, pool_size=2,
                                        connect_args={"server_settings": {"search_path": report.schema}})
    try:
        pipeline = MeteringPipeline(replay_engine)
        async with snapshot(engine) as conn:
            closes = list((await closed_periods(conn)).values())
        for k in range(len(closes) + 1):
            await _replay_segment(engine, replay_engine, pipeline, closes, k, report)
            if k < len(closes):
                await _check_final_bills(engine, replay_engine, closes[k], report)
        await _compare_live(engine, replay_engine, pipeline, report)
    finally:
        await replay_engine.dispose()
        report.seconds = time.perf_counter() - started
        if not keep:
            async with raw_connection(engine) as conn:
                await conn.execute(f'DROP SCHEMA "{report.schema}" CASCADE')
    return report


async def _create_schema(conn, schema: str) -> None:
    tables = [r["table_name"] for r in await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )]
    async with conn.transaction():
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        for table in tables:
            if table in SKIPPED:
                continue
            if table in SHARED:
                await conn.execute(f'CREATE VIEW "{schema}".{table} AS SELECT * FROM public.{table}')
            else:
                await conn.execute(f'CREATE TABLE "{schema}".{table} (LIKE public.{table} INCLUDING ALL)')
        await conn.execute(f'INSERT INTO "{schema}".projection_state SELECT * FROM public.projection_state')


async def _replay_segment(engine, replay_engine, pipeline: MeteringPipeline, closes: list[ClosedPeriod], k: int,
                          report: ReplayReport) -> None:
    params: list = []
    cards = await _fetch(engine, f"SELECT id, effective_from FROM public.rate_cards WHERE "
                                 f"{_segment(closes, k, 'created_at', params)} ORDER BY created_at, id", params)
    for card in cards:
        await _add_card(replay_engine, card["id"], card["effective_from"])
        report.rate_cards += 1
    params = []
    condition = _segment(closes, k, "received_at", params)
    # Lifecycle events first: usage is then rated with its final owners at once, with no re-rating (the
    # projection does not depend on the order events are applied in; the comparison at the end checks it).
    for kind in ("lifecycle", "other"):
        kind_filter = f"type {'=' if kind == 'lifecycle' else '<>'} '{RESOURCE_TYPE}'"
        async with raw_connection(engine) as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                async with _Appliers(pipeline, report) as appliers:
                    batch: list[bytes] = []
                    async for row in conn.cursor(f"SELECT payload FROM public.events WHERE {kind_filter} AND "
                                                 f"{condition}", *params, prefetch=CHUNK):
                        batch.append(bytes(row["payload"]))
                        if len(batch) >= CHUNK:
                            await appliers.submit(batch)
                            batch = []
                    if batch:
                        await appliers.submit(batch)


async def _fetch(engine, query: str, params: list) -> list:
    async with raw_connection(engine) as conn:
        return await conn.fetch(query, *params)


async def _add_card(replay_engine, card_id: int, effective_from: datetime) -> None:
    async with raw_transaction(replay_engine) as conn:
        await lock_attribution(conn, exclusive=True)
        await conn.execute("INSERT INTO rate_cards SELECT * FROM public.rate_cards WHERE id = $1", card_id)
        await reprice_from(conn, effective_from)


class _Appliers:
    """Up to CONCURRENCY batches in their transactions at once, as the worker runs them: one decodes while
    another waits for PostgreSQL."""

    def __init__(self, pipeline: MeteringPipeline, report: ReplayReport) -> None:
        self.pipeline, self.report = pipeline, report
        self.slots = asyncio.Semaphore(CONCURRENCY)
        self.tasks: set[asyncio.Task] = set()

    async def submit(self, payloads: list[bytes]) -> None:
        await self.slots.acquire()
        task = asyncio.create_task(_apply(self.pipeline, payloads, self.report))
        task.add_done_callback(lambda _: self.slots.release())
        self.tasks.add(task)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await asyncio.gather(*self.tasks)  # raises the first failure


async def _apply(pipeline: MeteringPipeline, payloads: list[bytes], report: ReplayReport) -> None:
    # One record holding a JSON array of the stored events: decoded exactly as the worker decodes records.
    offset = report.events
    report.events += len(payloads)
    record = KafkaRecord("replay", 0, offset, b"[" + b",".join(payloads) + b"]")
    for attempt in range(5):
        try:
            outcome = await pipeline.process([record])
            break
        except asyncpg.DeadlockDetectedError:  # concurrent batches: rolled back whole, so simply run it again
            if attempt == 4:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    if outcome.dead_letters:
        report.differences.append(f"{len(outcome.dead_letters)} stored events no longer decode: "
                                  f"{outcome.dead_letters[0].errors}")


async def _check_final_bills(engine, replay_engine, close: ClosedPeriod, report: ReplayReport) -> None:
    """Recompute the period's final bills from the replayed rollups as they stood at its close."""
    async with snapshot(replay_engine) as conn:
        computed = await period_bills(conn, close.period, status="final", as_of=close.closed_at,
                                      closed_at=close.closed_at, before_close=close.close_seq, force=True)
    replayed = {bill.bill_id: issue(bill).document for bill in computed.bills}
    stored = {r["bill_id"]: bytes(r["document"]) for r in await _fetch(
        engine, "SELECT bill_id, document FROM bills WHERE period = $1", [close.period])}
    for bill_id in sorted(set(replayed) | set(stored)):
        if bill_id not in stored:
            report.differences.append(f"bill {bill_id}: replay bills it, but {close.period} closed without it")
        elif bill_id not in replayed:
            report.differences.append(f"bill {bill_id}: final, but replay does not bill it")
        elif replayed[bill_id] != stored[bill_id]:
            report.differences.append(f"bill {bill_id}: replayed figures differ from the final bill "
                                      f"({_document_difference(stored[bill_id], replayed[bill_id])})")
        report.final_bills_checked += 1


def _document_difference(stored: bytes, replayed: bytes) -> str:
    a, b = orjson.loads(stored), orjson.loads(replayed)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and k not in ("content_hash", "csv_sha256")]
    return ", ".join(f"{k}: final {a.get(k)!r} replay {b.get(k)!r}" for k in keys[:3])


async def _compare_live(engine, replay_engine, pipeline: MeteringPipeline, report: ReplayReport) -> None:
    """Catch up with what arrived meanwhile, then compare while ingestion is paused."""
    schema = report.schema
    for _ in range(20):
        async with raw_connection(engine) as conn:
            missing = [bytes(r["payload"]) for r in await conn.fetch(
                f'SELECT e.payload FROM public.events e WHERE NOT EXISTS (SELECT 1 FROM "{schema}".events r '
                "WHERE r.source = e.source AND r.event_id = e.event_id)")]
            cards = await conn.fetch(f'SELECT id, effective_from FROM public.rate_cards WHERE id NOT IN '
                                     f'(SELECT id FROM "{schema}".rate_cards) ORDER BY created_at, id')
        for card in cards:
            await _add_card(replay_engine, card["id"], card["effective_from"])
            report.rate_cards += 1
        for start in range(0, len(missing), CHUNK):
            await _apply(pipeline, missing[start:start + CHUNK], report)
        async with raw_transaction(engine) as conn:
            await lock_attribution(conn, exclusive=True)  # no batch, lifecycle event or rate card commits now
            counts = await conn.fetchrow(
                f'SELECT (SELECT count(*) FROM public.events) - (SELECT count(*) FROM "{schema}".events) AS events,'
                f' (SELECT count(*) FROM public.rate_cards) - (SELECT count(*) FROM "{schema}".rate_cards) AS cards'
            )
            if counts["events"] or counts["cards"]:
                continue
            for table in await _compared_tables(conn, schema):
                await _compare_table(conn, schema, table, report)
            await _compare_drafts(conn, replay_engine, report)
            return
    report.differences.append("live ingestion did not pause long enough to compare; run replay again")


async def _compared_tables(conn, schema: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'"
        " AND table_name = ANY($2::text[])", schema, list(COMPARED))
    return [t for t in COMPARED if t in {r["table_name"] for r in rows}]


async def _compare_table(conn, schema: str, table: str, report: ReplayReport) -> None:
    columns = [r["column_name"] for r in await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1"
        " ORDER BY ordinal_position", table)]
    cols = ", ".join(columns)
    where = " WHERE NOT (quantity = 0 AND amount = 0 AND unpriced_quantity = 0)" if table in ROLLUPS else ""
    live, rebuilt = f"SELECT {cols} FROM public.{table}{where}", f'SELECT {cols} FROM "{schema}".{table}{where}'
    only_live = await conn.fetch(f"{live} EXCEPT ALL {rebuilt} LIMIT 3")
    only_replay = await conn.fetch(f"{rebuilt} EXCEPT ALL {live} LIMIT 3")
    report.tables_compared[table] = await conn.fetchval(f"SELECT count(*) FROM ({live}) AS t")
    for row in only_live:
        report.differences.append(f"{table}: live row not rebuilt by replay: {dict(row)}")
    for row in only_replay:
        report.differences.append(f"{table}: replay row not in the live table: {dict(row)}")


async def _compare_drafts(conn, replay_engine, report: ReplayReport) -> None:
    """Draft bills of every open period with usage, computed from the live and from the rebuilt rollups."""
    as_of = datetime.now(UTC)
    for period in await open_periods(conn):
        live = {b.bill_id: draft_bytes(b) for b in
                (await period_bills(conn, period, status="draft", as_of=as_of)).bills}
        async with snapshot(replay_engine) as replay_conn:
            rebuilt = {b.bill_id: draft_bytes(b) for b in
                       (await period_bills(replay_conn, period, status="draft", as_of=as_of)).bills}
        for bill_id in sorted(set(live) | set(rebuilt)):
            if live.get(bill_id) != rebuilt.get(bill_id):
                report.differences.append(f"draft bill {bill_id}: replayed figures differ from the live draft")
            report.drafts_checked += 1
