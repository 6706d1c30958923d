"""Bulk write side for rebuilding the usage rollups from stored usage (``govmeter replay``).

The worker adds each batch's hourly deltas to usage_hourly and the coarser rollups row by row
(``rollups.apply_rollup_deltas``). A rebuild rates millions of stored events with the same ``rate_usage``, but
stages its hourly deltas with COPY in an UNLOGGED table without indexes and adds them to the rollups with one
set-based ``INSERT … SELECT … GROUP BY`` per table. Sums are exact decimals, so the grouping order changes
nothing: the rows are the ones the worker's upserts would have produced.

Every function runs on the caller's connection, inside the caller's transaction, against the tables of its
search_path (the replay schema)."""

from __future__ import annotations

from operator import itemgetter
from typing import Iterable

import asyncpg

from services.projection.rollups import COARSE_ROLLUPS, HOURLY_KEY, LOCAL_MONTH_OF_DAY, SUMS
from services.projection.staging import HOURLY_DELTA_COLUMNS

STAGING = "hourly_delta_staging"  # rows of staging.HOURLY_DELTA_COLUMNS
COARSE_STAGING = "coarse_delta_staging"  # the staged deltas summed per local day, owner, system and meter
TEXT_KEYS = {"resource_id", "meter", "department_id", "system"}


class StoredUsage(asyncpg.Record):
    """A usage event read from the event store's typed columns (``USAGE_COLUMNS``, in that order), with the
    attributes of ``MeteredUsage``: ``rate_usage`` takes the rows as they arrive, without a copy per event."""

    resource_id = property(itemgetter(0))
    meter = property(itemgetter(1))
    quantity = property(itemgetter(2))
    start = property(itemgetter(3))
    end = property(itemgetter(4))


USAGE_COLUMNS = "subject, meter, quantity, start_at, end_at"


async def create_staging(conn) -> None:
    # UNLOGGED, no index, no key: rows are only appended and read once, in bulk.
    await conn.execute(f"CREATE UNLOGGED TABLE IF NOT EXISTS {STAGING} ({HOURLY_DELTA_COLUMNS})")


async def create_staging_tables(conn) -> None:
    await create_staging(conn)
    await conn.execute(
        f"""
        CREATE UNLOGGED TABLE IF NOT EXISTS {COARSE_STAGING} (
            day date NOT NULL, month date NOT NULL, department_id text, system text, meter text NOT NULL,
            quantity numeric NOT NULL, amount numeric NOT NULL, unpriced_quantity numeric NOT NULL)
        """
    )


async def stage_deltas(conn, rows: Iterable[tuple]) -> None:
    await conn.copy_records_to_table(STAGING, records=rows)


async def fold_staged_deltas(conn) -> None:
    """Add every staged delta to usage_hourly and to each coarse rollup, then empty the staging tables."""
    await _fold(conn, "usage_hourly", HOURLY_KEY, STAGING)
    # The coarse rollups group far fewer rows: sum the deltas once per local day, owner, system and meter
    # (staged rows carry the local day; its month is derived as the worker's rollup statement does), then fold
    # each coarse rollup from those sums.
    await conn.execute(
        f"""
        INSERT INTO {COARSE_STAGING}
        SELECT day, {LOCAL_MONTH_OF_DAY}, department_id, system, meter,
               sum(quantity::numeric), sum(amount::numeric), sum(unpriced_quantity::numeric)
        FROM {STAGING} GROUP BY day, department_id, system, meter
        """
    )
    for rollup in COARSE_ROLLUPS:
        await _fold(conn, rollup.table, rollup.columns, COARSE_STAGING)
    await conn.execute(f"TRUNCATE {STAGING}, {COARSE_STAGING}")


async def _fold(conn, table: str, key: tuple[str, ...], source: str) -> None:
    names = ", ".join(key)
    # Grouped under the "C" collation: the same groups (equal text is equal bytes), compared without strcoll.
    keys = ", ".join(f'{c} COLLATE "C" AS {c}' if c in TEXT_KEYS else c for c in key)
    groups = ", ".join(str(i + 1) for i in range(len(key)))
    grouped = (f"SELECT {keys}, sum(quantity::numeric), sum(amount::numeric), sum(unpriced_quantity::numeric) "
               f"FROM {source} GROUP BY {groups}")
    columns = f"{table} ({names}, {', '.join(SUMS)})"
    if await conn.fetchval(f"SELECT NOT EXISTS (SELECT 1 FROM {table})"):
        # The first fold fills an empty table: insert without its indexes, then build them once. Grouped by
        # sorting (in the key's order), not hashing: millions of groups of numeric sums would spill a hash
        # table, and rows written in key order make the unique index quick to build.
        indexes = await _drop_indexes(conn, table)
        await conn.execute("SET LOCAL enable_hashagg = off")
        await conn.execute(f"INSERT INTO {columns} {grouped}")
        await conn.execute("SET LOCAL enable_hashagg = on")
        for definition in indexes:
            await conn.execute(definition)
        return
    # ON CONFLICT adds: rows from earlier segments (or from re-rating) accumulate exactly as the worker's do.
    added = ", ".join(f"{s} = {table}.{s} + EXCLUDED.{s}" for s in SUMS)
    await conn.execute(f"INSERT INTO {columns} {grouped} ON CONFLICT ({names}) DO UPDATE SET {added}")


async def _drop_indexes(conn, table: str) -> list[str]:
    """Drop the table's indexes that back no constraint; returns their definitions, to build them again."""
    rows = await conn.fetch(
        """
        SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index i
        WHERE i.indrelid = $1::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        """,
        table,
    )
    for r in rows:
        await conn.execute(f"DROP INDEX {r['name']}")
    return [r["definition"] for r in rows]
