"""The advisory locks that order the writers, and the one "stamp the cut" step that a close and replay share.

Lock order: BILLING_LOCK first, then the attribution lock, never the other way round."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime
from typing import AsyncIterator

# Attribution and prices are shared state: usage batches hold this advisory lock shared, lifecycle events and
# rate cards hold it exclusively, so a batch never rates with an owner or price another transaction is changing.
ATTRIBUTION_LOCK = 0x676F_766D  # "govm"
# Closes, manual adjustments and ledger appends run one at a time under this transaction-level advisory lock.
BILLING_LOCK = 0x676D_626C  # "gmbl"
AUTO_CLOSE_LOCK = 0x676D_6163  # "gmac": one auto-closer at a time across billing API instances


async def lock_attribution(conn, exclusive: bool) -> None:
    if exclusive:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ATTRIBUTION_LOCK)
    else:
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", ATTRIBUTION_LOCK)


async def lock_billing(conn) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", BILLING_LOCK)


@asynccontextmanager
async def auto_close_turn(conn) -> AsyncIterator[bool]:
    """Whether this connection got the auto-closer's session lock (False: another instance holds it); released on
    leaving when it was taken."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", AUTO_CLOSE_LOCK):
        yield False
        return
    try:
        yield True
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", AUTO_CLOSE_LOCK)


async def stamp_cut(conn) -> tuple[datetime, tuple[datetime, ...]]:
    """The instant of a cut (a close, or a replay segment's boundary), taken while the caller holds the attribution
    lock exclusively, and the start instants of the transactions open at it. Every transaction that committed
    before the lock was taken is stamped (received_at, created_at: their start) before this instant. Those still
    open now began before it but wrote nothing yet (they would hold the lock): what they write counts after the
    cut, so their start instants are kept with it."""
    cut_at = await conn.fetchval("SELECT clock_timestamp()")
    open_now = [r["xact_start"] for r in await conn.fetch(
        """
        SELECT xact_start FROM pg_stat_activity
        WHERE pid <> pg_backend_pid() AND datname = current_database() AND xact_start <= $1
        """,
        cut_at,
    )]
    return cut_at, tuple(open_now)
