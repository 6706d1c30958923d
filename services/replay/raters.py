"""Rater processes: each rates a share of a segment's usage pages with the worker's own ``rate_usage``, straight
from the events' typed columns, and stages the deltas into the replay schema through its own connection."""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import asyncpg

from schemas.events import USAGE_TYPE
from services.common.periods import LocalCalendar
from services.metering.domain.rating import rate_usage
from services.projection.ownership import load_ownership
from services.metering.rebuild import USAGE_COLUMNS, StoredUsage, stage_deltas
from services.projection.staging import hourly_delta_rows
from services.reference.rate_cards import load_rate_cards
from services.replay.plan import SegmentPlan, page_ranges


CHUNK = 20_000  # usage events rated at a time: large enough for COPY, small enough for RSS


RATERS = 2  # processes rating usage: Python's rating is the bottleneck, PostgreSQL keeps up with two


@dataclass(frozen=True)
class Raters:
    """Processes that rate a segment's usage, each over its own range of the event store's pages, and stage
    the deltas into the replay schema through their own connections."""

    pool: ProcessPoolExecutor
    dsn: str
    schema: str


async def replay_usage(raters: Raters, writer, plan: SegmentPlan, segment: str, params: list) -> None:
    """Rate the segment's usage in the rater processes, each over a share of the segment's pages. They stage
    their deltas with their own (committed) COPYs; the writer folds them afterwards."""
    owners, cards = dict(await load_ownership(writer)), await load_rate_cards(writer)
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(
        loop.run_in_executor(raters.pool, rate_pages, raters.dsn, raters.schema,
                             [f"SELECT {USAGE_COLUMNS} FROM {table} WHERE type = '{USAGE_TYPE}' AND {pages} "
                              f"AND {segment}" for table, pages in share], params, owners, cards)
        for share in page_ranges(plan, RATERS)))


def rate_pages(dsn: str, schema: str, queries: list[str], params: list, owners: dict, cards: list) -> None:
    """In a rater process: rate the usage the ``queries`` return, one after the other, and stage its deltas."""
    asyncio.run(_rate_pages(dsn, schema, queries, params, owners, cards))


async def _rate_pages(dsn: str, schema: str, queries: list[str], params: list, owners: dict, cards: list) -> None:
    source = await asyncpg.connect(dsn)
    stager = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        async with source.transaction(readonly=True):  # a cursor lives in a transaction
            for query in queries:
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
