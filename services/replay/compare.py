"""Replay's verdicts: each close's final bills recomputed from the replayed rollups, then (ingestion paused) the
rebuilt projections against the live ones and every open period's drafts against the live drafts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson

from services.bill_reads.bills import ClosedPeriod, open_periods, period_bills, snapshot
from services.billing.domain.bills import Bill
from services.billing.domain.render import draft_bytes, issue
from services.common.db import raw_connection
from services.projection.rollups import COARSE_ROLLUPS
from services.replay.plan import ReplayReport


# the usage rollups as the worker writes them: a new coarse rollup is compared without being listed here
ROLLUPS = ("usage_hourly", *(rollup.table for rollup in COARSE_ROLLUPS))  # zeros = no row
COMPARED = ("resource_intervals", *ROLLUPS, "utilization_hourly")


async def _fetch(engine, query: str, params: list) -> list:
    async with raw_connection(engine) as conn:
        return await conn.fetch(query, *params)


async def check_final_bills(engine, replay_engine, close: ClosedPeriod, report: ReplayReport) -> None:
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


async def compare_all(engine, conn, replay_engine, schema: str, report: ReplayReport) -> None:
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
            # live: as the API reads them (closed months fingerprinted by usage version); rebuilt: every
            # fingerprint recomputed (the scratch schema keeps no versions): replay checks the versions too
            live, rebuilt = await asyncio.gather(_drafts(conn, period, as_of, True),
                                                 _drafts(replay_conn, period, as_of, False))
            for bill_id in sorted(set(live) | set(rebuilt)):
                if live.get(bill_id) != rebuilt.get(bill_id):
                    report.differences.append(f"draft bill {bill_id}: replayed figures differ from the live draft")
                report.drafts_checked += 1


async def _drafts(conn, period: str, as_of: datetime, versioned: bool) -> dict[str, bytes]:
    return {b.bill_id: draft_bytes(b) for b in (await period_bills(conn, period, status="draft", as_of=as_of,
                                                                   versioned=versioned)).bills}
