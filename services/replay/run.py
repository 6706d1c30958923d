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

import logging
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from schemas.events import RESOURCE_TYPE, USAGE_TYPE, UTILIZATION_TYPE, resource_data_adapter, validate_event
from services.bill_reads.bills import ClosedPeriod, closed_periods, snapshot
from services.common.db import asyncpg_dsn, raw_connection, raw_transaction
from services.common.locks import lock_attribution, stamp_cut
from services.metering.domain.attribution import lifecycle_from_hours
from services.projection.ownership import load_ownership, reproject_ownership
from services.projection.partitions import is_partition_name, stored_event_tables
from services.metering.rebuild import create_staging_tables, fold_staged_deltas
from services.projection.rerate import rebuild_rollups, reprice_from
from services.metering.utilization_store import store_utilization
from services.reference.rate_cards import load_rate_cards
from services.replay.compare import check_final_bills, compare_all
from services.replay.plan import (
    Boundary,
    Cut,
    ReplayReport,
    SegmentPlan,
    page_ranges,
    plan_segments,
    segment_of,
    segment_where,
)
from services.replay.raters import RATERS, Raters, replay_usage

log = logging.getLogger(__name__)

# Read by bill computation through views; the pipeline never writes them.
SHARED = ("departments", "billing_periods", "bills", "adjustments", "usage_baselines", "ledger_entries", "budgets",
          "budget_alerts", "resource_trials")
# events: a view over what has been replayed (see _create_schema); event_key_tiers: how the event store's key is
# indexed, not a projection
SKIPPED = ("alembic_version", "events", "event_keys", "event_key_tiers")
UTILIZATION_CHUNK = 2_000
CATCH_UP_ROUNDS = 20


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
            if table in SKIPPED or is_partition_name(table):  # the copy of usage_hourly is one plain table
                continue
            if table in SHARED:
                await conn.execute(f'CREATE VIEW "{schema}".{table} AS SELECT * FROM public.{table}')
            else:
                # UNLOGGED: the schema is scratch, dropped after the comparison; no WAL for millions of rows
                await conn.execute(f'CREATE UNLOGGED TABLE "{schema}".{table} (LIKE public.{table} INCLUDING ALL)')
        await conn.execute(f'INSERT INTO "{schema}".projection_state SELECT * FROM public.projection_state')
        await conn.execute(f'SET LOCAL search_path = "{schema}"')
        await create_staging_tables(conn)
        await _create_events_view(conn, schema, await stored_event_tables(conn))


async def _create_events_view(conn, schema: str, tables: list[str]) -> None:
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
        SELECT e.* FROM ({" UNION ALL ".join(f"SELECT * FROM {table}" for table in tables)}) e
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
            plans = await plan_segments(source, boundaries, await stored_event_tables(source))
            for k in segments:
                await _replay_segment(source, replay_engine, raters, boundaries, k, plans.get(k, SegmentPlan()),
                                      report)
                if k < len(closes):
                    await check_final_bills(engine, replay_engine, closes[k], report)


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
        segment = segment_where(boundaries, k, segment_params)
        if plan.events.get(USAGE_TYPE):
            await replay_usage(raters, writer, plan, segment, segment_params)
            await fold_staged_deltas(writer)
        if plan.events.get(UTILIZATION_TYPE):
            for share in page_ranges(plan, 1):
                for table, pages in share:
                    await _replay_utilization(source, writer, table, f"{pages} AND {segment}", segment_params,
                                              report)
        boundary = boundaries[k]
        await writer.execute("INSERT INTO replayed_through VALUES ($1, $2)", boundary.closed_at,
                             list(boundary.open_at_close))
    report.events += sum(plan.events.values())
    report.rate_cards += len(cards)


async def _add_card(writer, card_id: int, effective_from: datetime) -> None:
    await writer.execute("INSERT INTO rate_cards SELECT * FROM public.rate_cards WHERE id = $1", card_id)
    await reprice_from(writer, effective_from, await load_rate_cards(writer))


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


async def _replay_utilization(source, writer, table: str, where: str, params: list, report: ReplayReport) -> None:
    """Utilisation is rare next to usage and has no typed columns: decoded and validated as the worker does."""
    batch: list[dict] = []
    async for row in source.cursor(f"SELECT payload FROM {table} WHERE type = '{UTILIZATION_TYPE}' AND "
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


async def _compare_live(engine, replay_engine, raters: Raters, boundaries: list[Boundary],
                        report: ReplayReport) -> None:
    """Compare while ingestion is paused; what arrived after the last cut is replayed first, up to a new cut."""
    schema = report.schema
    for _ in range(CATCH_UP_ROUNDS):
        async with raw_transaction(engine) as conn:
            await lock_attribution(conn, exclusive=True)  # no batch, lifecycle event or rate card commits now
            # The event store and the rate cards are append-only: equal counts mean all of them were replayed.
            events = " + ".join(f"(SELECT count(*) FROM {table})" for table in await stored_event_tables(conn))
            counts = await conn.fetchrow(f"SELECT {events} AS events, "
                                         "(SELECT count(*) FROM public.rate_cards) AS cards")
            if (counts["events"], counts["cards"]) == (report.events, report.rate_cards):
                await compare_all(engine, conn, replay_engine, schema, report)
                return
            boundaries.append(await _cut_now(conn))
        await _replay_round(engine, replay_engine, raters, boundaries, range(len(boundaries) - 1, len(boundaries)),
                            [], report)
    report.differences.append("live ingestion did not pause long enough to compare; run replay again")


