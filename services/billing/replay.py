"""``govmeter replay``: rebuild every projection from the event store into a fresh schema and compare.

The projections (resource_intervals, usage_hourly, the coarse usage rollups, utilization_hourly) are rebuilt on
connections whose search_path is a new schema ``replay_<id>``: its tables are empty copies of the live ones
(``LIKE ... INCLUDING ALL``); billing's tables and departments appear there as views of the live ones (read
only by bill computation). Its ``events`` is a view too: the lifecycle events replayed so far (copied into
``stored_events``) and the live usage events of the segments replayed so far, so that re-rating after an
ownership change or a new rate card (``rerate.rebuild_rollups``, ``rerate.reprice_from``) reads exactly what the
live worker had stored at that point.

History is replayed in segments, in the order of the closes: first what existed at the first close (events
received and rate cards created by then, see ``ClosedPeriod.saw``), then that period's final bills are
recomputed from the replayed rollups and must be byte for byte the stored ones; then the next close, and so on;
then the rest, up to a cut taken like a close (the attribution lock held exclusively for an instant). Within a
segment, rate cards are added first (each re-pricing what is stored, ``reprice_from``), then lifecycle events
(ownership re-projected, stored usage re-rated from the hour they take effect), then usage is rated with the
worker's own ``rate_usage`` straight from the events' typed columns (validated when they were stored), by two
rater processes each over a share of the segment's pages, and added to the rollups in bulk
(``services.metering.rebuild``), then utilisation goes through ``store_utilization``. The projection does not
depend on the order events are applied in; the comparison at the end checks it.

Finally, with ingestion paused (the attribution lock held exclusively, briefly), the rebuilt projections are
compared with the live ones (a fingerprint of each table's rows; the differing rows are named when they
differ), and every open period's draft bills with the live drafts; what arrived after the cut is replayed
first, as one more segment."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from schemas.events import RESOURCE_TYPE, USAGE_TYPE, UTILIZATION_TYPE, resource_data_adapter, validate_event
from services.billing.bills import ClosedPeriod, closed_periods, open_periods, period_bills, snapshot
from services.billing.domain.bills import Bill
from services.billing.domain.render import draft_bytes, issue
from services.common.db import asyncpg_dsn, raw_connection, raw_transaction
from services.common.locks import lock_attribution, stamp_cut
from services.common.periods import LocalCalendar
from services.metering.domain.attribution import lifecycle_from_hours
from services.metering.domain.rating import rate_usage
from services.metering.rebuild import USAGE_COLUMNS, StoredUsage, create_staging_tables, fold_staged_deltas, stage_deltas
from services.metering.ownership import load_ownership, reproject_ownership
from services.metering.rerate import rebuild_rollups, reprice_from
from services.metering.staging import hourly_delta_rows
from services.reference.rate_cards import load_rate_cards
from services.metering.utilization_store import store_utilization

log = logging.getLogger(__name__)

# Read by bill computation through views; the pipeline never writes them.
SHARED = ("departments", "billing_periods", "bills", "adjustments", "usage_baselines", "ledger_entries", "budgets",
          "budget_alerts")
SKIPPED = ("alembic_version", "events")  # events: a view over what has been replayed (see _create_schema)
COMPARED = ("resource_intervals", "usage_hourly", "usage_daily", "usage_department_daily", "usage_monthly",
            "utilization_hourly")
ROLLUPS = ("usage_hourly", "usage_daily", "usage_department_daily", "usage_monthly")  # zeros = no row
CHUNK = 20_000  # usage events rated at a time: large enough for COPY, small enough for RSS
UTILIZATION_CHUNK = 2_000
CATCH_UP_ROUNDS = 20
RATERS = 2  # processes rating usage: Python's rating is the bottleneck, PostgreSQL keeps up with two


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


@dataclass(frozen=True, slots=True)
class Cut:
    """A segment boundary taken like a close (ClosedPeriod has the same two fields): everything stamped by
    ``closed_at`` had committed, except what the transactions open then (stamped with their start) write."""

    closed_at: datetime
    open_at_close: tuple[datetime, ...] = ()


Boundary = ClosedPeriod | Cut


@dataclass(frozen=True)
class Raters:
    """Processes that rate a segment's usage, each over its own range of the event store's pages, and stage
    the deltas into the replay schema through their own connections."""

    pool: ProcessPoolExecutor
    dsn: str
    schema: str


@dataclass
class SegmentPlan:
    """What one segment holds: events by type and the range of the event store's pages they lie in."""

    events: dict[str, int] = field(default_factory=dict)
    first_tid: str | None = None
    last_tid: str | None = None

    def add(self, event_type: str, count: int, first_tid: str, last_tid: str) -> None:
        self.events[event_type] = count
        self.first_tid = first_tid if self.first_tid is None else min(self.first_tid, first_tid, key=_tid)
        self.last_tid = last_tid if self.last_tid is None else max(self.last_tid, last_tid, key=_tid)


def _tid(text: str) -> tuple[int, int]:
    block, offset = text.strip("()").split(",")
    return int(block), int(offset)


def segment_of(boundaries: list[Boundary], column: str, params: list) -> str:
    """SQL expression: the index of the first boundary that saw a row stamped ``column`` (the segment it is
    replayed in), or len(boundaries) when none did yet."""
    def param(value) -> str:
        params.append(value)
        return f"${len(params)}"

    whens = " ".join(f"WHEN {column} <= {param(b.closed_at)}::timestamptz AND NOT {column} = "
                     f"ANY({param(list(b.open_at_close))}::timestamptz[]) THEN {i}" for i, b in enumerate(boundaries))
    return f"(CASE {whens} ELSE {len(boundaries)} END)" if boundaries else "0"


async def replay(engine: AsyncEngine, url: str, keep: bool = False) -> ReplayReport:
    report = ReplayReport(schema=f"replay_{uuid.uuid4().hex[:10]}")
    started = time.perf_counter()
    async with raw_connection(engine) as conn:
        await _create_schema(conn, report.schema)
    replay_engine = create_async_engine(url, pool_size=2,
                                        connect_args={"server_settings": {"search_path": report.schema}})
    pool = ProcessPoolExecutor(RATERS, mp_context=multiprocessing.get_context("spawn"))
    raters = Raters(pool, asyncpg_dsn(url), report.schema)
    warming = [pool.submit(int) for _ in range(RATERS)]  # the processes start while the history is planned
    try:
        async with snapshot(engine) as conn:
            closes = list((await closed_periods(conn)).values())
        boundaries: list[Boundary] = [*closes, await _take_cut(engine)]
        await _replay_round(engine, replay_engine, raters, boundaries, range(len(boundaries)), closes, report)
        await _compare_live(engine, replay_engine, raters, boundaries, report)
    finally:
        for future in warming:
            future.cancel()
        pool.shutdown(cancel_futures=True)
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
                # UNLOGGED: the schema is scratch, dropped after the comparison; no WAL for millions of rows
                await conn.execute(f'CREATE UNLOGGED TABLE "{schema}".{table} (LIKE public.{table} INCLUDING ALL)')
        await conn.execute(f'INSERT INTO "{schema}".projection_state SELECT * FROM public.projection_state')
        await conn.execute(f'SET LOCAL search_path = "{schema}"')
        await create_staging_tables(conn)
        await _create_events_view(conn, schema)


async def _create_events_view(conn, schema: str) -> None:
    # Lifecycle events are copied as they are replayed (few; ownership is re-projected from their payload).
    # Usage is not copied: the live rows of the segments replayed so far (boundaries in replayed_through).
    await conn.execute(f'CREATE TABLE "{schema}".stored_events (LIKE public.events INCLUDING ALL)')
    await conn.execute(f'CREATE TABLE "{schema}".replayed_through (closed_at timestamptz NOT NULL, '
                       'open_at_close timestamptz[] NOT NULL)')
    await conn.execute(
        f"""
        CREATE VIEW "{schema}".events AS
        SELECT * FROM "{schema}".stored_events
        UNION ALL
        SELECT e.* FROM public.events e
        WHERE e.type = '{USAGE_TYPE}' AND EXISTS (
            SELECT 1 FROM "{schema}".replayed_through b
            WHERE e.received_at <= b.closed_at AND NOT e.received_at = ANY(b.open_at_close))
        """
    )


async def _take_cut(engine) -> Cut:
    async with raw_transaction(engine) as conn:
        await lock_attribution(conn, exclusive=True)
        return await _cut_now(conn)


async def _cut_now(conn) -> Cut:
    """The caller holds the attribution lock exclusively: a cut stamped as a close stamps it (``stamp_cut``)."""
    return Cut(*await stamp_cut(conn))


async def _replay_round(engine, replay_engine, raters: Raters, boundaries: list[Boundary], segments: range,
                        closes: list[ClosedPeriod], report: ReplayReport) -> None:
    """Replay these segments from one snapshot of the event store; check each close's final bills."""
    async with raw_connection(engine) as source:
        async with source.transaction(isolation="repeatable_read", readonly=True):
            plans = await _plan(source, boundaries)
            for k in segments:
                await _replay_segment(source, replay_engine, raters, boundaries, k, plans.get(k, SegmentPlan()),
                                      report)
                if k < len(closes):
                    await _check_final_bills(engine, replay_engine, closes[k], report)


async def _plan(source, boundaries: list[Boundary]) -> dict[int, SegmentPlan]:
    """One pass over the event store: how many events of each type each segment holds, and where. A segment's
    events are then read from its range of pages only (append-only table: segments mostly follow each other)."""
    params: list = []
    rows = await source.fetch(
        f"""
        SELECT segment, type, count(*) AS events, min(ctid)::text AS first_tid, max(ctid)::text AS last_tid
        FROM (SELECT {segment_of(boundaries, 'received_at', params)} AS segment, type, ctid FROM public.events) e
        GROUP BY 1, 2
        """,
        *params,
    )
    plans: dict[int, SegmentPlan] = defaultdict(SegmentPlan)
    for r in rows:
        plans[r["segment"]].add(r["type"], r["events"], r["first_tid"], r["last_tid"])
    return plans


async def _replay_segment(source, replay_engine, raters: Raters, boundaries: list[Boundary], k: int,
                          plan: SegmentPlan, report: ReplayReport) -> None:
    params: list = []
    cards = await source.fetch(f"SELECT id, effective_from FROM public.rate_cards WHERE "
                               f"{segment_of(boundaries, 'created_at', params)} = {k} ORDER BY created_at, id",
                               *params)
    async with raw_transaction(replay_engine) as writer:
        # the set-based folds group millions of rows and may build indexes over them
        await writer.execute("SET LOCAL work_mem = '512MB'; SET LOCAL maintenance_work_mem = '512MB'")
        for card in cards:
            await _add_card(writer, card["id"], card["effective_from"])
        if plan.events.get(RESOURCE_TYPE):
            await _replay_lifecycle(writer, boundaries, k)
        segment_params: list = []
        segment = f"{segment_of(boundaries, 'received_at', segment_params)} = {k}"
        if plan.events.get(USAGE_TYPE):
            await _replay_usage(raters, writer, plan, segment, segment_params)
            await fold_staged_deltas(writer)
        if plan.events.get(UTILIZATION_TYPE):
            pages = f"ctid >= '{plan.first_tid}'::tid AND ctid <= '{plan.last_tid}'::tid"
            await _replay_utilization(source, writer, f"{pages} AND {segment}", segment_params, report)
        boundary = boundaries[k]
        await writer.execute("INSERT INTO replayed_through VALUES ($1, $2)", boundary.closed_at,
                             list(boundary.open_at_close))
    report.events += sum(plan.events.values())
    report.rate_cards += len(cards)


async def _fetch(engine, query: str, params: list) -> list:
    async with raw_connection(engine) as conn:
        return await conn.fetch(query, *params)


async def _add_card(writer, card_id: int, effective_from: datetime) -> None:
    await writer.execute("INSERT INTO rate_cards SELECT * FROM public.rate_cards WHERE id = $1", card_id)
    await reprice_from(writer, effective_from)


async def _replay_lifecycle(writer, boundaries: list[Boundary], k: int) -> None:
    """As the worker applies new lifecycle events: re-project the resources' ownership, then re-rate their
    stored usage from the hour the earliest change takes effect."""
    params: list = []
    rows = await writer.fetch(
        f"""
        INSERT INTO stored_events SELECT * FROM public.events
        WHERE type = '{RESOURCE_TYPE}' AND {segment_of(boundaries, 'received_at', params)} = {k}
        RETURNING subject, payload
        """,
        *params,
    )
    from_hours = lifecycle_from_hours(
        (r["subject"], resource_data_adapter.validate_python(orjson.loads(r["payload"])["data"])["effective_at"])
        for r in rows
    )
    await reproject_ownership(writer, from_hours)
    await rebuild_rollups(writer, from_hours, await load_ownership(writer), await load_rate_cards(writer))


async def _replay_usage(raters: Raters, writer, plan: SegmentPlan, segment: str, params: list) -> None:
    """Rate the segment's usage in the rater processes, each over a share of the segment's pages. They stage
    their deltas with their own (committed) COPYs; the writer folds them afterwards."""
    owners, cards = dict(await load_ownership(writer)), await load_rate_cards(writer)
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(
        loop.run_in_executor(raters.pool, rate_pages, raters.dsn, raters.schema,
                             f"SELECT {USAGE_COLUMNS} FROM public.events WHERE type = '{USAGE_TYPE}' AND "
                             f"{pages} AND {segment}", params, owners, cards)
        for pages in _page_ranges(plan, RATERS)))


def _page_ranges(plan: SegmentPlan, parts: int) -> list[str]:
    """SQL conditions splitting the segment's pages [first, last] into up to ``parts`` ranges."""
    first, last = _tid(plan.first_tid)[0], _tid(plan.last_tid)[0] + 1
    bounds = sorted({first + (last - first) * i // parts for i in range(parts)} | {last})
    return [f"ctid >= '({low},0)'::tid AND ctid < '({high},0)'::tid" for low, high in zip(bounds, bounds[1:])]


def rate_pages(dsn: str, schema: str, query: str, params: list, owners: dict, cards: list) -> None:
    """In a rater process: rate the usage ``query`` returns and stage its deltas."""
    asyncio.run(_rate_pages(dsn, schema, query, params, owners, cards))


async def _rate_pages(dsn: str, schema: str, query: str, params: list, owners: dict, cards: list) -> None:
    source = await asyncpg.connect(dsn)
    stager = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        async with source.transaction(readonly=True):  # a cursor lives in a transaction
            await _rate_chunks(source, stager, query, params, owners, cards)
    finally:
        await source.close()
        await stager.close()


async def _rate_chunks(source, stager, query: str, params: list, owners: dict, cards: list) -> None:
    """Rate in chunks, straight from the typed columns. While Python rates one chunk, PostgreSQL reads the
    next one and takes in the previous one's deltas."""
    calendar = LocalCalendar()
    cursor = await source.cursor(query, *params, record_class=StoredUsage)
    fetching = asyncio.ensure_future(cursor.fetch(CHUNK))
    staging: asyncio.Future | None = None
    try:
        while rows := await fetching:
            fetching = asyncio.ensure_future(cursor.fetch(CHUNK))
            await asyncio.sleep(0)  # sends the request for the next chunk before rating this one
            deltas = rate_usage(rows, owners, cards)
            del rows
            staged = hourly_delta_rows(deltas, calendar)
            del deltas
            if staging is not None:
                await staging
            staging = asyncio.ensure_future(stage_deltas(stager, staged))
            await asyncio.sleep(0)
        if staging is not None:
            await staging
    finally:
        for task in (fetching, staging):
            if task is not None and not task.done():
                task.cancel()


async def _replay_utilization(source, writer, where: str, params: list, report: ReplayReport) -> None:
    """Utilisation is rare next to usage and has no typed columns: decoded and validated as the worker does."""
    batch: list[dict] = []
    async for row in source.cursor(f"SELECT payload FROM public.events WHERE type = '{UTILIZATION_TYPE}' AND "
                                   f"{where}", *params, prefetch=UTILIZATION_CHUNK):
        event, errors = validate_event(orjson.loads(row["payload"]))
        if event is None:
            report.differences.append(f"a stored utilisation event no longer validates: {errors}")
            continue
        batch.append(event)
        if len(batch) >= UTILIZATION_CHUNK:
            await store_utilization(writer, batch)
            batch = []
    if batch:
        await store_utilization(writer, batch)


async def _check_final_bills(engine, replay_engine, close: ClosedPeriod, report: ReplayReport) -> None:
    """Recompute the period's final bills from the replayed rollups as they stood at its close, deciding as the
    close did which earlier closed months to re-price: those whose replayed usage fingerprint differs from the one
    recorded when they were last settled (or that a later rate card touches). That is sound because every
    recorded fingerprint is checked too: each close's are compared below with the replayed usage's, in close
    order, so a month skipped here has the very usage its checked final figures were settled on. (Re-pricing
    every earlier month at every close instead cost O(closes²) month re-pricings: a year of monthly closes
    halved the replay's speed.)"""
    async with snapshot(replay_engine) as conn:
        computed = await period_bills(conn, close.period, status="final", as_of=close.closed_at,
                                      closed_at=close.closed_at, before_close=close.close_seq)
    recorded = sorted((r["department_id"], r["period"], r["digest"]) for r in await _fetch(
        engine, "SELECT department_id, period, digest FROM usage_baselines WHERE close_seq = $1", [close.close_seq]))
    replayed_baselines = sorted((b.department_id, b.period, b.digest) for b in computed.baselines)
    for department, period, digest in sorted(set(recorded) ^ set(replayed_baselines)):
        side = "recorded at the close" if (department, period, digest) in recorded else "replayed"
        report.differences.append(f"usage fingerprint of {department} {period} at the close of {close.period}: "
                                  f"{side} {digest[:12]}… has no match")
    bills = {bill.bill_id: bill for bill in computed.bills}
    replayed = {bill_id: issue(bill).document for bill_id, bill in bills.items()}
    stored = {r["bill_id"]: bytes(r["document"]) for r in await _fetch(
        engine, "SELECT bill_id, document FROM bills WHERE period = $1", [close.period])}
    for bill_id in sorted(set(replayed) | set(stored)):
        if bill_id not in stored:
            report.differences.append(f"bill {bill_id}: replay bills it, but {close.period} closed without it")
        elif bill_id not in replayed:
            report.differences.append(f"bill {bill_id}: final, but replay does not bill it")
        elif replayed[bill_id] != stored[bill_id] and not _issued_before_inert_csv(bills[bill_id], stored[bill_id]):
            report.differences.append(f"bill {bill_id}: replayed figures differ from the final bill "
                                      f"({_document_difference(stored[bill_id], replayed[bill_id])})")
        report.final_bills_checked += 1


def _issued_before_inert_csv(bill: Bill, stored: bytes) -> bool:
    """A bill closed before CSV text cells were made inert keeps the CSV it was issued with (and its hash)."""
    return issue(bill, inert_csv=False).document == stored


def _document_difference(stored: bytes, replayed: bytes) -> str:
    a, b = orjson.loads(stored), orjson.loads(replayed)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and k not in ("content_hash", "csv_sha256")]
    return ", ".join(f"{k}: final {a.get(k)!r} replay {b.get(k)!r}" for k in keys[:3])


async def _compare_live(engine, replay_engine, raters: Raters, boundaries: list[Boundary],
                        report: ReplayReport) -> None:
    """Compare while ingestion is paused; what arrived after the last cut is replayed first, up to a new cut."""
    schema = report.schema
    for _ in range(CATCH_UP_ROUNDS):
        async with raw_transaction(engine) as conn:
            await lock_attribution(conn, exclusive=True)  # no batch, lifecycle event or rate card commits now
            # The event store and the rate cards are append-only: equal counts mean all of them were replayed.
            counts = await conn.fetchrow("SELECT (SELECT count(*) FROM public.events) AS events, "
                                         "(SELECT count(*) FROM public.rate_cards) AS cards")
            if (counts["events"], counts["cards"]) == (report.events, report.rate_cards):
                await _compare_all(engine, conn, replay_engine, schema, report)
                return
            boundaries.append(await _cut_now(conn))
        await _replay_round(engine, replay_engine, raters, boundaries, range(len(boundaries) - 1, len(boundaries)),
                            [], report)
    report.differences.append("live ingestion did not pause long enough to compare; run replay again")


async def _compare_all(engine, conn, replay_engine, schema: str, report: ReplayReport) -> None:
    """Tables and drafts, while ``conn`` holds the attribution lock. usage_hourly, by far the largest table, is
    compared on a second connection meanwhile: what is live stays as it is until the lock is released."""
    tables = await _compared_tables(conn, schema)
    largest = [t for t in tables if t == "usage_hourly"]

    async def compare_largest() -> None:
        async with raw_connection(engine) as other:
            async with other.transaction(isolation="repeatable_read", readonly=True):
                await other.execute("SET LOCAL work_mem = '512MB'")  # hashed comparison of millions of rows
                for table in largest:
                    await _compare_table(other, schema, table, report)

    async def compare_rest() -> None:
        await conn.execute("SET LOCAL work_mem = '512MB'")
        for table in tables:
            if table not in largest:
                await _compare_table(conn, schema, table, report)
        await _compare_drafts(conn, replay_engine, report)

    await asyncio.gather(compare_largest(), compare_rest())


async def _compared_tables(conn, schema: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'"
        " AND table_name = ANY($2::text[])", schema, list(COMPARED))
    return [t for t in COMPARED if t in {r["table_name"] for r in rows}]


async def _compare_table(conn, schema: str, table: str, report: ReplayReport) -> None:
    columns = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND "
        "table_name = $1 ORDER BY ordinal_position", table)
    cols = ", ".join(c["column_name"] for c in columns)
    where = " WHERE NOT (quantity = 0 AND amount = 0 AND unpriced_quantity = 0)" if table in ROLLUPS else ""
    # A fingerprint of each side's rows (how many, and the exact sum of a 64-bit hash of each row's text, numbers
    # without trailing zeros as numeric equality has it): one cheap pass per side. Only when they differ are the
    # rows themselves compared, to name the differing ones.
    values = ", ".join(f"trim_scale({c['column_name']})" if c["data_type"] == "numeric" else c["column_name"]
                       for c in columns)
    fingerprint = (f"SELECT count(*) AS rows, coalesce(sum(hashtextextended(ROW({values})::text, 0)), 0) AS digest "
                   f"FROM {{}}.{table}{where}")
    live_print = await conn.fetchrow(fingerprint.format("public"))
    rebuilt_print = await conn.fetchrow(fingerprint.format(f'"{schema}"'))
    report.tables_compared[table] = live_print["rows"]
    if tuple(live_print) == tuple(rebuilt_print):
        return
    live, rebuilt = f"SELECT {cols}, 1 AS side FROM public.{table}{where}", \
        f'SELECT {cols}, -1 AS side FROM "{schema}".{table}{where}'
    differing = await conn.fetch(f"SELECT {cols}, sum(side) AS surplus FROM ({live} UNION ALL {rebuilt}) AS t "
                                 f"GROUP BY {cols} HAVING sum(side) <> 0 LIMIT 100")
    only_live = [r for r in differing if r["surplus"] > 0][:3]
    only_replay = [r for r in differing if r["surplus"] < 0][:3]
    for row in only_live:
        report.differences.append(f"{table}: live row not rebuilt by replay: {_row(row)}")
    for row in only_replay:
        report.differences.append(f"{table}: replay row not in the live table: {_row(row)}")
    if not differing:  # the same rows, but a hash said otherwise: report it rather than pass silently
        report.differences.append(f"{table}: fingerprints differ ({dict(live_print)} live, {dict(rebuilt_print)} "
                                  "replay) though no differing row was found")


def _row(row) -> dict:
    return {k: v for k, v in dict(row).items() if k != "surplus"}


async def _compare_drafts(conn, replay_engine, report: ReplayReport) -> None:
    """Draft bills of every open period with usage, computed from the live and from the rebuilt rollups."""
    as_of = datetime.now(UTC)
    async with snapshot(replay_engine) as replay_conn:
        for period in await open_periods(conn):
            # the live and the rebuilt drafts are read at once, on two connections
            live, rebuilt = await asyncio.gather(_drafts(conn, period, as_of), _drafts(replay_conn, period, as_of))
            for bill_id in sorted(set(live) | set(rebuilt)):
                if live.get(bill_id) != rebuilt.get(bill_id):
                    report.differences.append(f"draft bill {bill_id}: replayed figures differ from the live draft")
                report.drafts_checked += 1


async def _drafts(conn, period: str, as_of: datetime) -> dict[str, bytes]:
    return {b.bill_id: draft_bytes(b) for b in (await period_bills(conn, period, status="draft", as_of=as_of)).bills}
