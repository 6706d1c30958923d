"""Closing billing periods (by hand or automatically) and posting manual adjustments: the billing write side.

A close runs in one transaction holding the billing lock and, exclusively, the attribution lock: no usage batch,
lifecycle event or rate card commits while the period's bills are computed, so the final bills, their ledger
entries and the instant ``closed_at`` describe one consistent state of the rollups."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Collection

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from services.bill_reads.bills import PeriodBills, closed_periods, open_periods, period_bills
from services.billing.domain.ledger import LedgerEntry
from services.billing.domain.periods import due_periods, has_ended
from services.billing.domain.render import issue
from services.billing.domain.watermarks import override_record, sources_behind
from services.billing.ledger import append_entries
from services.billing.watermarks import HeldBySources, load_marks
from services.common.config import get_settings
from services.common.db import raw_connection, raw_transaction, without_statement_timeout
from services.common.locks import auto_close_turn, lock_attribution, lock_billing, stamp_cut
from services.common.metrics import PERIOD_CLOSE_SECONDS, PERIOD_CLOSES
from services.common.periods import month_bounds

log = logging.getLogger(__name__)


class PeriodNotEnded(Exception):
    pass


class PeriodClosed(Exception):
    pass


class UnknownDepartment(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BillIssued:
    bill_id: str
    department_id: str
    total: Decimal
    content_hash: str


@dataclass(frozen=True, slots=True)
class CloseOutcome:
    period: str
    closed_at: datetime
    closed_by: str
    total: Decimal
    bills: list[BillIssued]
    closed_now: bool  # False: it was already closed (closing is idempotent)
    watermark_override: dict | None = None  # closed past sources behind its end: who, when, why


async def close_period(engine: AsyncEngine, period: str, now: datetime, closed_by: str,
                       instance: str | None = None, active_days: int | None = None,
                       override_reason: str | None = None) -> CloseOutcome:
    """Finalise every bill of ``period``. Closing a closed period changes nothing and returns the same outcome
    (``closed_now`` False); a period whose month has not ended cannot close (PeriodNotEnded), nor one that an
    active source has not delivered data up to the end of (HeldBySources; ``active_days``: the sources' activity
    window, by default ``GOVMETER_SOURCE_ACTIVE_DAYS``), unless ``override_reason`` says why it closes anyway,
    which is recorded with the period. ``instance`` names the process that closes it, recorded with the period."""
    if active_days is None:
        active_days = get_settings().source_active_days
    if not has_ended(period, now):
        raise PeriodNotEnded(f"period: {period} has not ended yet (it ends {month_bounds(period)[1].isoformat()})")
    started = time.perf_counter()
    async with raw_transaction(engine) as conn:
        await without_statement_timeout(conn)
        await lock_billing(conn)
        done = await _outcome(conn, period)
        if done is not None:
            return done
        await lock_attribution(conn, exclusive=True)
        closed_at, open_now = await stamp_cut(conn)
        # Read under the exclusive attribution lock: no batch is moving a watermark meanwhile.
        override = await _watermark_override(conn, period, now, active_days, closed_by, closed_at, override_reason)
        computed = await period_bills(conn, period, status="final", as_of=closed_at, closed_at=closed_at,
                                      versioned=True)
        issued = [(bill, issue(bill)) for bill in computed.bills]
        entries, bill_entry_index = _ledger_entries(issued, period, closed_by, closed_at)
        linked = await append_entries(conn, entries)
        total = sum((bill.total for bill in computed.bills), Decimal(0))
        close_seq = await conn.fetchval(
            """
            INSERT INTO billing_periods (period, closed_at, open_at_close, closed_by, bills, total, ledger_seq,
                                         closed_by_instance, watermark_override, close_started_at, close_finished_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, now(), clock_timestamp()) RETURNING close_seq
            """,
            period, closed_at, open_now, closed_by, len(issued), total, linked[-1].seq if linked else None, instance,
            None if override is None else orjson.dumps(override).decode(),
        )
        await _store_final_bills(conn, period, closed_at, issued, [linked[bill_entry_index[b.bill_id]].seq
                                                                   for b, _ in issued])
        await _store_baselines(conn, computed, close_seq)
        PERIOD_CLOSES.labels("auto" if closed_by == "auto-close" else "manual").inc()
        PERIOD_CLOSE_SECONDS.observe(time.perf_counter() - started)  # the lock waits included
        log.info("closed %s: %d bills, total %s", period, len(issued), total)
        return CloseOutcome(period, closed_at, closed_by, total,
                            [BillIssued(b.bill_id, b.department_id, b.total, p.content_hash) for b, p in issued], True,
                            override)


async def _watermark_override(conn, period: str, now: datetime, active_days: int, closed_by: str,
                              closed_at: datetime, override_reason: str | None) -> dict | None:
    """HeldBySources when an active source is behind the period's end, unless ``override_reason`` says why it
    closes anyway: then the record of that override, kept with the period."""
    behind = sources_behind(await load_marks(conn), period, now, active_days)
    if not behind:
        return None
    if override_reason is None:
        raise HeldBySources(period, behind)
    log.warning("closing %s past sources behind its end, by %s: %s", period, closed_by, override_reason)
    return override_record(closed_by, closed_at, override_reason, behind)


def _ledger_entries(issued: list, period: str, closed_by: str,
                    closed_at: datetime) -> tuple[list[LedgerEntry], dict[str, int]]:
    """The ledger entries of the final bills (their lines, late adjustments, then the bill itself), and where
    each bill's own entry stands among them."""
    entries: list[LedgerEntry] = []
    bill_entry_index: dict[str, int] = {}
    for bill, paper in issued:
        common = dict(department_id=bill.department_id, period=period, bill_id=bill.bill_id,
                      created_by=closed_by, created_at=closed_at)
        entries += [LedgerEntry(0, "bill_line", meter=line.meter, quantity=line.quantity, amount=line.amount,
                                **common) for line in bill.lines]
        entries += [LedgerEntry(0, "late_adjustment", meter=a.meter, quantity=a.quantity, amount=a.amount,
                                original_period=a.original_period, reason=a.reason, **common)
                    for a in bill.late_adjustments]
        bill_entry_index[bill.bill_id] = len(entries)
        entries.append(LedgerEntry(0, "bill", amount=bill.total, content_hash=paper.content_hash, **common))
    return entries, bill_entry_index


async def _store_final_bills(conn, period: str, closed_at: datetime, issued: list, ledger_seqs: list[int]) -> None:
    if not issued:
        return
    await conn.execute(
        """
        INSERT INTO bills (bill_id, period, department_id, total, content_hash, document, csv, closed_at,
                           ledger_seq)
        SELECT b, $2, d, t, h, doc, c, $3, s
        FROM unnest($1::text[], $4::text[], $5::numeric[], $6::text[], $7::bytea[], $8::bytea[], $9::bigint[])
             AS x(b, d, t, h, doc, c, s)
        """,
        [bill.bill_id for bill, _ in issued], period, closed_at,
        [bill.department_id for bill, _ in issued], [bill.total for bill, _ in issued],
        [paper.content_hash for _, paper in issued], [paper.document for _, paper in issued],
        [paper.csv for _, paper in issued], ledger_seqs,
    )


async def _store_baselines(conn, computed: PeriodBills, close_seq: int) -> None:
    """The usage fingerprints the close settled on (replay checks each of them)."""
    if not computed.baselines:
        return
    await conn.execute(
        """
        INSERT INTO usage_baselines (department_id, period, digest, close_seq, usage_version)
        SELECT d, p, g, $4, v FROM unnest($1::text[], $2::text[], $3::text[], $5::bigint[]) AS x(d, p, g, v)
        """,
        [b.department_id for b in computed.baselines], [b.period for b in computed.baselines],
        [b.digest for b in computed.baselines], close_seq, [b.usage_version for b in computed.baselines],
    )


async def _outcome(conn, period: str) -> CloseOutcome | None:
    row = await conn.fetchrow(
        "SELECT closed_at, closed_by, total, watermark_override::text AS o FROM billing_periods WHERE period = $1",
        period)
    if row is None:
        return None
    bills = await conn.fetch(
        "SELECT bill_id, department_id, total, content_hash FROM bills WHERE period = $1 ORDER BY department_id", period
    )
    return CloseOutcome(period, row["closed_at"], row["closed_by"], row["total"],
                        [BillIssued(b["bill_id"], b["department_id"], b["total"], b["content_hash"]) for b in bills],
                        False, None if row["o"] is None else orjson.loads(row["o"]))


async def close_due_periods(engine: AsyncEngine, now: datetime, grace_days: int, closed_by: str = "auto-close",
                            only: Collection[str] | None = None, instance: str | None = None,
                            active_days: int | None = None) -> list[CloseOutcome] | None:
    """Close every open period (see ``open_periods``) whose grace has passed (``only``: among these), until none
    is left: closing a month makes the one after it a candidate (it carries the late changes), so a backlog of
    months without usage is closed in one round, not one month a round. A period that an active source is behind
    is skipped, with a warning naming the sources, and so are the periods after it (they end later still).
    Returns None when another instance is doing it (a session advisory lock keeps closers from working in
    parallel)."""
    outcomes: list[CloseOutcome] = []
    while True:
        async with raw_connection(engine) as conn, auto_close_turn(conn) as mine:
            if not mine:
                return outcomes or None
            candidates = await open_periods(conn)
            closed = set(await closed_periods(conn))
        if only is not None:
            candidates = [p for p in candidates if p in set(only)]
        due = due_periods(candidates, closed, now, grace_days)
        if not due:
            return outcomes
        for period in due:
            try:
                outcomes.append(await close_period(engine, period, now, closed_by, instance, active_days))
            except HeldBySources as held:
                log.warning("auto-close: %s", held)
                return outcomes


async def post_adjustment(engine: AsyncEngine, department_id: str, period: str, amount: Decimal, reason: str,
                          reference: str | None, created_by: str) -> dict:
    """Append a manual adjustment (negative: a credit) to a department's bill of an open period, with its
    ledger entry, in one transaction. Returns it as ``list_adjustments`` lists it."""
    created_at = datetime.now(UTC)
    async with raw_transaction(engine) as conn:
        await lock_billing(conn)
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM departments WHERE id = $1)", department_id):
            raise UnknownDepartment(f"department_id: unknown department {department_id!r}")
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM billing_periods WHERE period = $1)", period):
            raise PeriodClosed(f"month: period {period} is closed; its bills are final (post the adjustment to an "
                               "open period)")
        return await insert_adjustment(conn, department_id, period, amount, reason, reference, created_by,
                                       created_at)


async def insert_adjustment(conn, department_id: str, period: str, amount: Decimal, reason: str,
                            reference: str | None, created_by: str, created_at: datetime) -> dict:
    """The adjustment and its ledger entry, in the caller's transaction, which holds BILLING_LOCK and has checked
    that ``period`` is open (so no close can slip between the check and the insert). The row as
    ``list_adjustments`` gives it, with its ledger hash."""
    (entry,) = await append_entries(conn, [LedgerEntry(
        0, "adjustment", department_id=department_id, period=period, amount=amount, reason=reason,
        reference=reference, created_by=created_by, created_at=created_at)])
    adjustment_id = await conn.fetchval(
        """
        INSERT INTO adjustments (department_id, period, amount, reason, reference, created_by, created_at, ledger_seq)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
        """,
        department_id, period, amount, reason, reference, created_by, created_at, entry.seq,
    )
    return dict(id=adjustment_id, department_id=department_id, period=period, amount=amount, reason=reason,
                reference=reference, created_by=created_by, created_at=created_at, ledger_seq=entry.seq,
                ledger_hash=entry.hash)


async def list_adjustments(engine: AsyncEngine, department_ids: Collection[str] | None, period: str | None
                           ) -> list[dict]:
    async with raw_connection(engine) as conn:
        rows = await conn.fetch(
            """
            SELECT a.id, a.department_id, a.period, a.amount, a.reason, a.reference, a.created_by, a.created_at,
                   a.ledger_seq, l.hash AS ledger_hash
            FROM adjustments a LEFT JOIN ledger_entries l ON l.seq = a.ledger_seq
            WHERE ($1::text[] IS NULL OR a.department_id = ANY($1::text[])) AND ($2::text IS NULL OR a.period = $2)
            ORDER BY a.id
            """,
            department_ids, period,
        )
    return [dict(r) for r in rows]
