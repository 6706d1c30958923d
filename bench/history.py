"""Older synthetic years for ``bench/run.py --years N``: the stored year copied N−1 times into the years before it,
set-based in SQL, so that the worker and the finance queries are measured over a store of N years.

Each copy is the stored year's usage events (new ids, the same payloads, received k years before) and its rollups
(usage_hourly and the coarse ones), shifted back by whole years in the local calendar (Asia/Shanghai): a local day
maps to the same day k years earlier, so the coarse rollups stay the sums of the hourly rows. The copied years'
event keys are then settled (services/metering/key_tiers.py), as a store kept for years would have them. The stored
year holds no 29 February (2025), so no two days map to one; a leap year's 29 February simply stays empty. Local
days and months at the edges of two copies receive from both (the stored year runs from 08:00 local on 1 January
to 08:00 on the next 1 January): each rollup is filled by one statement that sums the copies' rows per shifted key
and adds them to any row already there."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.common.periods import Month
from services.metering.key_tiers import settle_event_keys
from services.projection.partitions import ensure_month_partitions
from services.projection.rollups import COARSE_ROLLUPS, HOURLY_KEY, SUMS

USAGE = "gov.cloud.usage.v1"
_SHIFT = "make_interval(years => k)"


def history_months(stored_year: int, years: int) -> tuple[Month, Month]:
    """The months a store of ``years`` years up to ``stored_year`` spans (and the next January's first hours)."""
    return Month(stored_year - years + 1, 1), Month(stored_year + 1, 1)


def _events_statement() -> str:
    return f"""
        INSERT INTO events (source, event_id, type, subject, event_time, meter, quantity, start_at, end_at, payload,
                            received_at)
        SELECT source, event_id || '~' || ($3::int - k), type, subject, event_time - {_SHIFT}, meter, quantity,
               start_at - {_SHIFT}, end_at - {_SHIFT}, payload, received_at - {_SHIFT}
        FROM events CROSS JOIN generate_series(1, $4::int - 1) AS k
        WHERE type = '{USAGE}' AND start_at >= $1 AND start_at < $2"""


def _keys_statement() -> str:
    """The copied events' keys, as the worker writes them with each event (migration 0021)."""
    return """
        INSERT INTO event_keys (key, received_at, payload_digest)
        SELECT govmeter_event_key(source, event_id), received_at, sha256(payload) FROM events
        WHERE received_at < $1"""


def _rollup_statement(table: str, key: tuple[str, ...], column: str, day_key: bool) -> str:
    """Every copy of the stored year's rows of ``table`` in one statement, summed per shifted key and added."""
    shifted = f"({column} - {_SHIFT})" + ("::date" if day_key else "")
    picks = ", ".join(shifted if c == column else c for c in key)
    names = ", ".join(key)
    positions = ", ".join(str(i + 1) for i in range(len(key)))
    added = ", ".join(f"{s} = {table}.{s} + EXCLUDED.{s}" for s in SUMS)
    # local days: both 1 Januaries, as the docstring says (the stored UTC year ends at 08:00 local on the second)
    compare = f"{column} BETWEEN $1::date AND $2::date" if day_key else f"{column} >= $1 AND {column} < $2"
    return f"""
        INSERT INTO {table} ({names}, {", ".join(SUMS)})
        SELECT {picks}, {", ".join(f"sum({s})" for s in SUMS)}
        FROM {table} CROSS JOIN generate_series(1, $3::int - 1) AS k
        WHERE {compare}
        GROUP BY {positions}
        ON CONFLICT ({names}) DO UPDATE SET {added}"""


async def add_history(conn, stored_year: int, years: int) -> int:
    """Copy the stored year into the ``years`` − 1 years before it, then vacuum; returns the usage events added.
    One transaction, local calendar arithmetic (the session's time zone is Asia/Shanghai within it)."""
    if years <= 1:
        return 0
    # the stored year is a UTC year (bench/run.py's YEAR_START): its hours and events' starts from 1 January
    # 00:00 UTC; its local days from 1 January to the next 1 January (08:00 local on both)
    start, end = datetime(stored_year, 1, 1, tzinfo=UTC), datetime(stored_year + 1, 1, 1, tzinfo=UTC)
    first_received = await conn.fetchval("SELECT min(received_at) FROM events")
    await ensure_month_partitions(conn, *history_months(stored_year, years))
    # and the event store's months of arrival: the copies were received whole years before the stored year
    received = Month.of(first_received)
    await ensure_month_partitions(conn, received.shifted(-12 * (years - 1)), received)
    async with conn.transaction():
        await conn.execute("SET LOCAL TimeZone = 'Asia/Shanghai'")
        added = await conn.execute(_events_statement(), start, end, stored_year, years)
        await conn.execute(_keys_statement(), first_received)
        # usage_hourly: no two copies ever fall on one hour
        await conn.execute(_rollup_statement("usage_hourly", HOURLY_KEY, "hour", False), start, end, years)
        for rollup in COARSE_ROLLUPS:
            column = "month" if "month" in rollup.columns else "day"
            await conn.execute(_rollup_statement(rollup.table, rollup.columns, column, True),
                               date(stored_year, 1, 1), date(stored_year + 1, 1, 1), years)
    # A store that grew over years was vacuumed as it grew: without this, autovacuum works through the copied
    # rows while the worker is measured at year N (it did: PostgreSQL's CPU an event rose by half).
    await conn.execute("VACUUM (ANALYZE)")
    # The older years were received years ago: settled, as the yearly ``govmeter event-keys --settle-before`` of
    # those years left them (services/metering/key_tiers.py); the stored year is the recent tier.
    await settle_event_keys(conn, first_received)
    return int(added.split()[-1])
