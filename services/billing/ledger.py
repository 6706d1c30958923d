"""The ledger in PostgreSQL: appending hash-chained entries and verifying the chain and what it vouches for."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import orjson

from services.billing.domain.ledger import GENESIS, LedgerEntry, LedgerProblem, chain, verify_chain
from services.billing.domain.rate_card_approvals import missing_entries
from services.billing.domain.render import content_hash_of, sha256_hex

COLUMNS = ("seq", "kind", "department_id", "period", "bill_id", "original_period", "meter", "quantity", "amount",
           "reason", "reference", "content_hash", "created_by", "created_at", "prev_hash", "hash")
_TYPES = ("bigint", "text", "text", "text", "text", "text", "text", "numeric", "numeric", "text", "text", "text",
          "text", "timestamptz", "text", "text")


async def ledger_head(conn) -> tuple[int, str]:
    row = await conn.fetchrow("SELECT seq, hash FROM ledger_entries ORDER BY seq DESC LIMIT 1")
    return (row["seq"], row["hash"]) if row else (0, GENESIS)


async def append_entries(conn, entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """Chain ``entries`` after the head and insert them. The caller holds BILLING_LOCK (one appender at once)."""
    if not entries:
        return []
    linked = chain(entries, *await ledger_head(conn))
    unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_TYPES))
    await conn.execute(
        f"INSERT INTO ledger_entries ({', '.join(COLUMNS)}) SELECT * FROM unnest({unnest})",
        *[[getattr(e, column) for e in linked] for column in COLUMNS],
    )
    return linked


async def load_entries(conn) -> list[LedgerEntry]:
    rows = await conn.fetch(f"SELECT {', '.join(COLUMNS)} FROM ledger_entries ORDER BY seq")
    return [LedgerEntry(**dict(r)) for r in rows]


@dataclass
class LedgerReport:
    entries: int
    head_seq: int
    head_hash: str
    problems: list[LedgerProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_ledger(conn) -> LedgerReport:
    """Verify the chain, then what it vouches for: every manual adjustment, final bill and close has its
    entry (so a deleted last entry is noticed too), each final bill's stored bytes still hash to the content
    hash in its entry, each bill's entry total is the sum of its line, late and manual adjustment entries, and every
    rate card proposal and decision has its entry."""
    entries = await load_entries(conn)
    problems = verify_chain(entries)
    by_seq = {e.seq: e for e in entries}
    for row in await conn.fetch("SELECT id, department_id, period, amount, ledger_seq FROM adjustments ORDER BY id"):
        entry = by_seq.get(row["ledger_seq"])
        if entry is None:
            problems.append(LedgerProblem(row["ledger_seq"], f"entry {row['ledger_seq']} (manual adjustment "
                                                             f"{row['id']}) is missing: deleted"))
        elif (entry.kind, entry.department_id, entry.period, entry.amount) != (
                "adjustment", row["department_id"], row["period"], row["amount"]):
            problems.append(LedgerProblem(entry.seq, f"entry {entry.seq} does not match manual adjustment {row['id']}"))
    parts: dict[tuple, Decimal] = defaultdict(Decimal)  # what each final bill's entry total must add up to
    for e in entries:
        if e.kind in ("bill_line", "late_adjustment"):
            parts[("bill", e.bill_id)] += e.amount
        elif e.kind == "adjustment":
            parts[("adjustments", e.department_id, e.period)] += e.amount
    for row in await conn.fetch("SELECT bill_id, department_id, period, total, content_hash, document, csv, "
                                "ledger_seq FROM bills ORDER BY bill_id"):
        expected = parts[("bill", row["bill_id"])] + parts[("adjustments", row["department_id"], row["period"])]
        problems.extend(_check_bill(row, by_seq.get(row["ledger_seq"]), expected))
    for row in await conn.fetch("SELECT period, ledger_seq FROM billing_periods WHERE ledger_seq IS NOT NULL"):
        if row["ledger_seq"] not in by_seq:
            problems.append(LedgerProblem(row["ledger_seq"], f"entry {row['ledger_seq']} (the ledger's head when "
                                                             f"{row['period']} closed) is missing: deleted"))
    proposals = await conn.fetch("SELECT id, version, status, proposed_by, decided_by FROM rate_card_proposals")
    problems += [LedgerProblem(0, why) for why in missing_entries(proposals, entries)]  # no entry: no seq to name
    problems.sort(key=lambda p: p.seq)
    head = entries[-1] if entries else None
    return LedgerReport(len(entries), head.seq if head else 0, head.hash if head else GENESIS,
                        list(dict.fromkeys(problems)))


def _check_bill(row, entry: LedgerEntry | None, expected_total: Decimal) -> list[LedgerProblem]:
    bill_id, seq = row["bill_id"], row["ledger_seq"]
    if entry is None:
        return [LedgerProblem(seq, f"entry {seq} (final bill {bill_id}) is missing: deleted")]
    problems = []
    document = orjson.loads(bytes(row["document"]))
    if (content_hash_of(document) != entry.content_hash or row["content_hash"] != entry.content_hash
            or document.get("content_hash") != entry.content_hash
            or document.get("csv_sha256") != sha256_hex(bytes(row["csv"]))):
        problems.append(LedgerProblem(seq, f"final bill {bill_id} no longer matches the content hash in entry {seq}: "
                                           "its stored JSON or CSV was changed"))
    if expected_total != entry.amount or row["total"] != entry.amount:
        problems.append(LedgerProblem(seq, f"entry {seq}: the total of final bill {bill_id} is not the sum of its "
                                           "line and adjustment entries"))
    return problems
