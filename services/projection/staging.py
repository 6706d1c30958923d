"""Session-local staging tables: how batches reach PostgreSQL (binary COPY), read and emptied by one statement."""

from __future__ import annotations

from services.common.periods import LocalCalendar
from services.metering.domain.rating import RollupDelta, RollupKey

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
